"""The end-to-end harness: the real app in a subprocess, driven by headless Chromium.

``app`` starts ``streamlit run app.py`` on a free localhost port with a fresh temporary
database and kernel folder (the real bundled model, from the engine's cache), waits until it
answers, and stops it with all its kernels afterwards. ``browser`` launches Debian's Chromium
through Playwright's sync API; Playwright never downloads a browser here: it is only ever
given ``executable_path``. Screenshots go to ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip every browser test, with the reason, when Debian's Chromium is not installed."""
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(
        reason=f"{CHROMIUM} is missing: install Debian's chromium (make test does, as root)"
    )
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)


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
        time.sleep(0.2)
    raise RuntimeError(f"the app did not serve within {timeout_s} s:\n{log_path.read_text()}")


def start_app(folder: Path, extra_env: dict[str, str] | None = None) -> RunningApp:
    """Start ``streamlit run app.py`` on a free port with its own database and kernel folder.

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
        "app.py",
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
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    # Kernels may outlive a politely stopped app; the group id is the app's pid.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=15)


@pytest.fixture(scope="module")
def app() -> Iterator[RunningApp]:
    """The real app on a free port, a fresh database, and a TA account in it."""
    from db import Store

    with tempfile.TemporaryDirectory(prefix="workbook-e2e-") as tmp:
        folder = Path(tmp)
        # The TA is created before the app starts, as an admin would with `python -m db`.
        with Store(folder / "workbook.db") as store:
            store.create_user(TA_EMAIL, TA_NAME, TA_PASSWORD, role="ta")
        running = start_app(folder)
        try:
            yield running
        finally:
            stop_app(running.process)
            log = running.log_path.read_text(errors="replace")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            (ARTIFACTS / "streamlit.log").write_text(log)


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium through Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def artifacts() -> Path:
    """The folder for screenshots and downloads (kept after the run, git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
