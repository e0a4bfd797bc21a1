"""``python -m tamio_async``: the command line (see `tamio_async.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
