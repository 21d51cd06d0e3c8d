"""``python -m topowire.cli``: the command line."""

import sys

from topowire.cli import main

sys.exit(main())
