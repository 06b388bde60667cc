"""``python -m pipeline`` runs the ``mrisr`` command-line tool."""

from pipeline.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
