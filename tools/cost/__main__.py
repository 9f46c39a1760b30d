"""`python -m tools.cost`: see tools/cost/cli.py."""

import sys

from tools.cost.cli import main

sys.exit(main())
