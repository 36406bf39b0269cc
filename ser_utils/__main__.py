"""``python -m ser_utils <command>``: see :mod:`ser_utils.cli`."""

from ser_utils.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
