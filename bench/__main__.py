"""Run every benchmark module in this folder (``python -m bench``, ``make bench``).

``python -m bench engine`` runs only ``bench/engine.py``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Import each ``bench/<name>.py`` (or the names given) and call its ``main()``."""
    argv = sys.argv[1:] if argv is None else argv
    here = Path(__file__).resolve().parent
    names = argv or sorted(p.stem for p in here.glob("*.py") if not p.stem.startswith("_"))
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"\n=== bench/{name}.py ===", flush=True)
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
