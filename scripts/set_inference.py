"""Shim for ``python -m artefix.release set-inference``: kept so that documented commands keep working."""

import sys

from artefix.release.__main__ import main

if __name__ == "__main__":
    main(["set-inference", *sys.argv[1:]])
