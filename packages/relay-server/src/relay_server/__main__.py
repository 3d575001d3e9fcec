"""``python -m relay_server``: the same as the ``relay`` command."""

from relay_server.cli import main

if __name__ == "__main__":
    main()
