"""`python -m gateway.cli` runs the `spean` command."""

import sys

from gateway.cli import main

sys.exit(main())
