"""The end-to-end harness: the real app in a subprocess, driven by headless Chromium.

Shared by ``conftest.py`` (the fixtures) and the tests (the accounts' constants). A module
of its own, so that its name cannot clash with ``tests/conftest.py``.

The ``app`` fixture starts ``streamlit run serve.py`` (app.py and its cookie route) on a free localhost port with a fresh temporary
database and kernel folder (the real bundled model, from the engine's cache), waits until it
answers, and stops it with all its kernels afterwards. ``browser`` launches Debian's Chromium
through Playwright's sync API; Playwright never downloads a browser here: it is only ever
given ``executable_path``. Screenshots go to ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "tests" / "artifacts"
# Flags for a quiet, offline, unprivileged headless Chromium (no sandbox: CI containers
# usually run as root, where Chromium refuses its own sandbox).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT_S = 90

TA_EMAIL = "ta@example.org"
TA_NAME = "Tess Assistant"
TA_PASSWORD = "ta-password-123"


@dataclass(frozen=True)
class RunningApp:
    """A started app: where it serves and the files it writes."""

    url: str
    db_path: Path
    work_dir: Path
    log_path: Path
    process: subprocess.Popen


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(url: str, process: subprocess.Popen, log_path: Path, timeout_s: float):
    """Poll Streamlit's health endpoint until it says ok; fail with the log otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the app exited with status {process.returncode}:\n{log_path.read_text()}"
            )
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            pass  # not listening yet
        time.sleep(0.05)
    raise RuntimeError(f"the app did not serve within {timeout_s} s:\n{log_path.read_text()}")


def start_app(folder: Path, extra_env: dict[str, str] | None = None) -> RunningApp:
    """Start ``streamlit run serve.py`` on a free port with its own database and kernel folder.

    The app runs in its own process group so that stopping it also stops its kernels.
    """
    port = free_port()
    db_path = folder / "workbook.db"
    work_dir = folder / "kernels"
    log_path = folder / "streamlit.log"
    env = {
        **os.environ,
        "WORKBOOK_DB": str(db_path),
        "WORKBOOK_WORK_DIR": str(work_dir),
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "serve.py",  # app.py plus the route that sets the HttpOnly sign-in cookies
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, process, log_path, START_TIMEOUT_S)
    except BaseException:
        stop_app(process)
        raise
    return RunningApp(url, db_path, work_dir, log_path, process)


def stop_app(process: subprocess.Popen) -> None:
    """Stop the app and everything it started (its process group), politely first."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
    # Kernels may outlive a politely stopped app; the group id is the app's pid.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=15)
