"""``python -m litforge ...`` is the same as the ``litforge`` console script."""

from litforge.cli import main

if __name__ == "__main__":
    main()
