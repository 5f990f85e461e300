"""``python -m jaxinit``: the report of every initializer, or ``show NAME``."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
