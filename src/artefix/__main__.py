"""``python -m artefix``: the ``artefix`` command line (:func:`artefix.cli.main`)."""

from artefix.cli import main

if __name__ == "__main__":
    main()
