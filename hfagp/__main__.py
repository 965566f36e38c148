"""``python -m hfagp`` is the same as the ``hfagp`` console script."""

import sys

from hfagp.cli import main

if __name__ == "__main__":
    sys.exit(main())
