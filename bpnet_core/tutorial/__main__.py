"""``python -m bpnet_core.tutorial``: run the source checkout's notebooks (:func:`bpnet_core.tutorial.runner.main`)."""

import sys

from bpnet_core.tutorial.runner import main

sys.exit(main())
