"""Shim for ``python -m artefix.release refresh-validation``: kept so that documented commands keep working."""

import sys

from artefix.release.__main__ import main

if __name__ == "__main__":
    main(["refresh-validation", *sys.argv[1:]])
