"""Shim for ``python -m artefix.release model``: kept so that documented commands keep working."""

import sys

from artefix.release.__main__ import main

if __name__ == "__main__":
    main(["model", *sys.argv[1:]])
