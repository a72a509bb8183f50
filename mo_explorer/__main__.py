"""Entry point of `python -m mo_explorer`."""

import sys

from mo_explorer.cli import main

sys.exit(main())
