"""``python -m minimax_s2v``: the ``minimax-s2v`` command line."""

from __future__ import annotations

import sys

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
