import sys

from topowire.cli import main

sys.exit(main())
