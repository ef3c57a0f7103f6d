"""``python -m lumos``: the ``lumos`` command line (what ``torchrun -m lumos`` runs)."""

import sys

from lumos.cli import main

if __name__ == "__main__":
    sys.exit(main())
