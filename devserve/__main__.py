"""``python -m devserve`` runs the command line."""

from __future__ import annotations

from devserve.cli import main

if __name__ == "__main__":
    main()
