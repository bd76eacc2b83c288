"""Kernel side of a gateway kernel: give the student a private folder, then run our launcher.

A kernelspec on the gateway host runs this script (see :mod:`workbook.kernels.gateway_local`, which
writes one)::

    python gateway_launcher.py [--home-root DIR] -- -f {connection_file} --memory-mb N ...

Everything after ``--`` goes unchanged to ``kernel_launcher.py`` (the same resource limits as
local kernels). Like that launcher it is run as a script, never imported by the app, and
imports nothing from ``workbook``: a kernel host or image needs only the standard library,
the kernel's Python packages, ``lm_engine`` and these two files.

With ``--home-root``, the kernel works in ``DIR/<student>``, the student's id coming from the
``KERNEL_WORKBOOK_USER`` variable that the app sends when it asks the gateway for a kernel
(gateways pass ``KERNEL_*`` variables through to the kernel). On Kubernetes every kernel has
its own pod and file system, so the kernelspec there leaves ``--home-root`` out.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

# The same rule as the app's user ids, so a crafted value cannot leave the home root.
_USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")


def _enter_home(root: Path, user: str) -> None:
    if not _USER_ID.match(user):
        sys.exit(f"gateway_launcher: refusing the student id {user!r} as a folder name")
    home = root / user
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chdir(home)
    os.environ["HOME"] = str(home)


def main(argv: list[str] | None = None) -> None:
    """Enter the student's folder, then hand over to ``kernel_launcher.main``."""
    argv = sys.argv[1:] if argv is None else argv
    ours, rest = _split(argv)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home-root", type=Path, default=None)
    args = parser.parse_args(ours)
    user = os.environ.get("KERNEL_WORKBOOK_USER", "")
    if args.home_root is not None and user:
        _enter_home(args.home_root, user)
    # kernel_launcher.py lies next to this file; Python put this folder first on sys.path.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import kernel_launcher

    kernel_launcher.main(rest)


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    """Our own options (before ``--``) and the launcher's (after it)."""
    if "--" not in argv:
        return [], list(argv)
    i = argv.index("--")
    return argv[:i], argv[i + 1 :]


if __name__ == "__main__":
    sys.exit(main())
