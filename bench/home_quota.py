"""Home quota without a home image: what each attack leaves in a student's folder.

Every cell of ``bench/_home_attacks.py`` runs in a real sandboxed kernel of its own (hosted
mode, ``WORKBOOK_KERNEL_HOME_IMAGES=0``, so the quota is the file limit and the watcher of
``workbook/kernels/home_watch.py``), at the default quota; the folder is then measured as
``du`` would (blocks on disk) and compared with the quota and the documented margin.

Run it with ``python -m bench home_quota`` (as root, or as an ordinary user: bubblewrap must
work). Options: ``--quota-mb N``, ``--only NAME``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench._common import machine
from bench._home_attacks import ATTACKS, on_disk, setup_cell

MB = 2**20


def main(argv: list[str] | None = None) -> None:
    """Run each attack once and print what it left."""
    from workbook.config import Settings
    from workbook.kernels import home_watch
    from workbook.kernels.pool import KernelPool

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quota-mb", type=int, default=Settings().kernel_home_mb)
    parser.add_argument("--only", default="")
    args = parser.parse_args(argv or [])
    quota = args.quota_mb
    with tempfile.TemporaryDirectory(prefix="wbk-bench-quota-") as top:
        os.chmod(top, 0o755)
        settings = Settings(
            work_dir=Path(top) / "work",
            db_path=Path(top) / "none.db",
            sandbox=True,
            kernel_home_mb=quota,
            kernel_home_images=False,
            cell_timeout_s=120,
            spare_kernels=0,
        )
        pool = KernelPool(settings)
        limit = quota + home_watch.MARGIN_MB
        files_limit = settings.kernel_home_files + home_watch.MARGIN_FILES
        print(machine())
        print(
            f"uid {os.geteuid()}, quota {quota} MB and {settings.kernel_home_files} files, "
            f"largest file {settings.kernel_max_file_mb} MB, margin {home_watch.MARGIN_MB} MB "
            f"and {home_watch.MARGIN_FILES} files"
        )
        print(f"{'attack':36} {'left MB':>8} {'files':>6} {'within margin':>14}  what happened")
        worst, worst_files = 0.0, 0
        try:
            for n, (name, cell) in enumerate(ATTACKS.items()):
                if args.only and args.only not in name:
                    continue
                kernel = pool.kernel_for(f"attacker{n}")
                kernel.execute(setup_cell(quota))
                start = time.monotonic()
                result = kernel.execute(cell)
                time.sleep(3)  # the watchdog's backstop walk included
                left, files = on_disk(kernel.cwd)
                shown = [o for o in result.outputs if o["output_type"] == "execute_result"]
                value = shown[-1]["data"]["text/plain"] if shown else result.status
                state = "kernel stopped" if result.status == "died" else "kernel lived"
                worst = max(worst, left / MB - quota)
                worst_files = max(worst_files, files - settings.kernel_home_files)
                held = left <= limit * MB and files <= files_limit
                print(
                    f"{name:36} {left / MB:8.1f} {files:6d} {str(held):>14}  "
                    f"{state} after {time.monotonic() - start:.1f} s; {value}",
                    flush=True,
                )
                kernel.shutdown()
        finally:
            pool.shutdown_all()
        print(
            f"largest overshoot: {worst:.1f} MB (margin {home_watch.MARGIN_MB} MB), "
            f"{worst_files} files (margin {home_watch.MARGIN_FILES})"
        )


if __name__ == "__main__":
    main()
