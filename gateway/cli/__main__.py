"""`python -m spean.gateway.cli` runs the `spean` command."""

import sys

from spean.gateway.cli import main

sys.exit(main())
