"""``python -m bpnet_core`` runs the ``bpnet`` CLI."""

import sys

from bpnet_core.cli import main

sys.exit(main())
