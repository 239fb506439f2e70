"""``python -m bpnet_core`` runs the ``bpnet`` CLI."""

import sys

from bpnet_core.cli import console_main

sys.exit(console_main())
