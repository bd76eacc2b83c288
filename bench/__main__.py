"""Run every benchmark module in this folder (``python -m bench``, ``make bench``).

``python -m bench engine`` runs only ``bench/engine.py``; options after one name go to that
benchmark (``python -m bench load --students 30``).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Import each ``bench/<name>.py`` (or the names given) and call its ``main()``."""
    argv = sys.argv[1:] if argv is None else argv
    here = Path(__file__).resolve().parent
    if len(argv) > 1 and argv[1].startswith("-"):
        # One benchmark with its own options: python -m bench load --students 30
        module = importlib.import_module(f"bench.{argv[0]}")
        module.main(argv[1:])
        return 0
    names = argv or sorted(p.stem for p in here.glob("*.py") if not p.stem.startswith("_"))
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"\n=== bench/{name}.py ===", flush=True)
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
