"""``python -m dl2``: the ``dl2`` command (see :mod:`dl2.cli`)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
