"""A Jupyter Kernel Gateway on this machine, serving the workbook's kernelspec.

Used by the gateway tests and the benchmark, and handy for trying ``WORKBOOK_KERNEL_GATEWAY``
on one host::

    python -m workbook.kernels.gateway_local serve --port 8889 --token s3cret
    python -m workbook.kernels.gateway_local kernelspec /usr/local/share/jupyter/kernels/workbook

:func:`kernelspec` is the kernelspec a gateway needs: it runs ``gateway_launcher.py`` (a
private folder per student) and then ``kernel_launcher.py`` (the memory and CPU limits local
kernels get), with ``PYTHONPATH`` pointing at the code that holds ``lm_engine`` and
``LM_ENGINE_CACHE`` at the model cache. A production gateway (Enterprise Gateway on
Kubernetes) uses the same ``argv`` and ``env`` in its kernel image; see docs/deployment.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from workbook.kernels import threads
from workbook.kernels.environment import KERNEL_ENV

__all__ = ["KERNEL_NAME", "LocalGateway", "free_port", "kernelspec", "write_kernelspec"]

KERNEL_NAME = "workbook"
_CODE_ROOT = Path(__file__).resolve().parents[2]


def _default_cache() -> Path:
    raw = os.environ.get("LM_ENGINE_CACHE", "").strip()
    if raw:
        return Path(raw).resolve()
    from lm_engine.config import default_cache_dir

    return default_cache_dir().resolve()


def kernelspec(
    *,
    python: str = sys.executable,
    code_root: Path = _CODE_ROOT,
    model_cache: Path | None = None,
    home_root: Path | None = None,
    memory_mb: int = 4096,
    cell_cpu_s: int = 120,
    max_output_kb: int = 1024,
) -> dict[str, Any]:
    """The ``kernel.json`` of the workbook's kernel on a gateway host.

    Args:
        python: the interpreter on the kernel host (with ipykernel, torch, transformers).
        code_root: the folder on the kernel host holding ``lm_engine/`` and ``workbook/``.
        model_cache: the model cache on the kernel host (``LM_ENGINE_CACHE``; read-only is
            fine once the app server has built it). ``None``: this machine's cache.
        home_root: parent of the students' private folders; ``None`` keeps the gateway's
            working folder (right for one pod per kernel).
        memory_mb: address-space limit per kernel, as ``WORKBOOK_KERNEL_MEMORY_MB``.
        cell_cpu_s: CPU seconds per cell, as ``WORKBOOK_KERNEL_CELL_CPU_S``.
        max_output_kb: output one cell may print, as ``WORKBOOK_CELL_MAX_OUTPUT_KB`` (the
            kernel stops printing past it; the app caps what arrives as well).
    """
    cache = model_cache if model_cache is not None else _default_cache()
    ours = ["--home-root", str(home_root)] if home_root is not None else []
    launcher = ["-f", "{connection_file}", "--memory-mb", str(memory_mb)]
    launcher += ["--cell-cpu-s", str(cell_cpu_s), "--max-output-kb", str(max_output_kb)]
    return {
        "argv": [
            python,
            str(Path(code_root) / "workbook" / "kernels" / "gateway_launcher.py"),
            *ours,
            "--",
        ]
        + launcher,
        "display_name": "LM Logits Workbook (Python 3)",
        "language": "python",
        # The gateway interrupts with SIGINT to the kernel's process group, as locally.
        "interrupt_mode": "signal",
        "env": {
            "PYTHONPATH": str(code_root),
            "LM_ENGINE_CACHE": str(cache),
            **KERNEL_ENV,
            # One torch thread until a run is granted its share (workbook.kernels.threads).
            **threads.kernel_env(),
        },
        "metadata": {"debugger": False},
    }


def write_kernelspec(dest: Path, **kwargs: Any) -> Path:
    """Write :func:`kernelspec` as ``dest/kernel.json`` and return that file."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / "kernel.json"
    target.write_text(json.dumps(kernelspec(**kwargs), indent=2) + "\n")
    return target


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalGateway:
    """A Jupyter Kernel Gateway (or Enterprise Gateway) on 127.0.0.1 with our kernelspec.

    Args:
        port: the port to serve on; ``None`` picks a free one (kept across restarts).
        token: the token clients must send (``WORKBOOK_KERNEL_GATEWAY_TOKEN``); empty: none.
        root: folder for the kernelspec, runtime files, students' folders and the log;
            ``None`` makes a temporary one, removed by :meth:`close`.
        max_kernels: the gateway's own cap (it answers 403 past it); ``None``: no cap.
        enterprise: the ``jupyter`` command of an environment holding Jupyter Enterprise
            Gateway, to run that (with its local process proxy) instead of Kernel Gateway.
            Enterprise Gateway 3.3.0 pins ``jupyter_client`` 6, so it cannot share the app's
            environment.
        spec: keyword arguments for :func:`kernelspec` (e.g. ``model_cache``).

    Use as a context manager, or call :meth:`start` and :meth:`close`.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        token: str = "",
        root: Path | None = None,
        max_kernels: int | None = None,
        enterprise: str | None = None,
        **spec: Any,
    ) -> None:
        self.port = port or free_port()
        self.token = token
        self._own_root = root is None
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="wbgw-"))
        self.max_kernels = max_kernels
        self.enterprise = enterprise
        spec.setdefault("home_root", self.root / "homes")
        self.spec = spec
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The gateway's base URL, as ``WORKBOOK_KERNEL_GATEWAY`` takes it."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The gateway's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path:
        """The gateway's log (its stdout and stderr)."""
        return self.root / "gateway.log"

    def start(self, timeout: float = 60.0) -> LocalGateway:
        """Start the gateway and wait until its REST API answers.

        Raises:
            RuntimeError: it exited or did not answer in time (the log's tail is included).
        """
        write_kernelspec(self.root / "share" / "jupyter" / "kernels" / KERNEL_NAME, **self.spec)
        env = dict(os.environ)
        env.update(
            {
                # Only our kernelspec, and no runtime files shared with other Jupyter servers.
                "JUPYTER_PATH": str(self.root / "share" / "jupyter"),
                "JUPYTER_DATA_DIR": str(self.root / "data"),
                "JUPYTER_RUNTIME_DIR": str(self.root / "runtime"),
                "JUPYTER_CONFIG_DIR": str(self.root / "config"),
            }
        )
        if self.enterprise:
            argv, app = [self.enterprise, "enterprisegateway"], "EnterpriseGatewayApp"
        else:
            argv, app = [sys.executable, "-m", "kernel_gateway"], "KernelGatewayApp"
        argv += [
            f"--{app}.ip=127.0.0.1",
            f"--{app}.port={self.port}",
            f"--{app}.port_retries=0",
            f"--{app}.default_kernel_name={KERNEL_NAME}",
            f"--{app}.auth_token={self.token}",
        ]
        if self.max_kernels is not None:
            argv.append(f"--{app}.max_kernels={self.max_kernels}")
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                argv,
                env=env,
                cwd=str(self.root),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the kernel gateway exited:\n{self.log_tail()}")
            if self.answers():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"the kernel gateway did not answer in {timeout:g} s:\n{self.log_tail()}"
        )

    def answers(self) -> bool:
        """Whether the gateway's REST API answers right now."""
        request = urllib.request.Request(f"{self.url}/api")
        if self.token:
            request.add_header("Authorization", f"token {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the gateway's log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, *, kill: bool = False) -> None:
        """Stop the gateway: SIGTERM (it shuts its kernels down), or SIGKILL with ``kill``.

        A killed gateway cannot shut its kernels down; they end themselves when they see
        their parent gone (ipykernel's parent poller).
        """
        if self._proc is None:
            return
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        self._proc = None

    def close(self) -> None:
        """Stop the gateway and remove a temporary root."""
        self.stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m workbook.kernels.gateway_local serve|kernelspec``."""
    parser = argparse.ArgumentParser(prog="python -m workbook.kernels.gateway_local")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run a Kernel Gateway on 127.0.0.1 until Ctrl-C")
    serve.add_argument("--port", type=int, default=8889)
    serve.add_argument("--token", default=os.environ.get("WORKBOOK_KERNEL_GATEWAY_TOKEN", ""))
    serve.add_argument("--root", type=Path, default=None, help="state folder (default: temp)")
    serve.add_argument(
        "--enterprise", metavar="JUPYTER", help="run Enterprise Gateway with this jupyter command"
    )
    spec = sub.add_parser("kernelspec", help="write the workbook's kernel.json into a folder")
    spec.add_argument("dest", type=Path)
    spec.add_argument("--python", default=sys.executable)
    spec.add_argument("--code-root", type=Path, default=_CODE_ROOT)
    spec.add_argument("--model-cache", type=Path, default=None)
    spec.add_argument("--home-root", type=Path, default=None)
    spec.add_argument("--memory-mb", type=int, default=4096)
    spec.add_argument("--cell-cpu-s", type=int, default=120)
    args = parser.parse_args(argv)
    if args.command == "kernelspec":
        path = write_kernelspec(
            args.dest,
            python=args.python,
            code_root=args.code_root,
            model_cache=args.model_cache,
            home_root=args.home_root,
            memory_mb=args.memory_mb,
            cell_cpu_s=args.cell_cpu_s,
        )
        print(path)
        return 0
    gateway = LocalGateway(
        port=args.port, token=args.token, root=args.root, enterprise=args.enterprise
    )
    gateway.start()
    print(f"Gateway on {gateway.url} (log: {gateway.log_path}); Ctrl-C stops it", flush=True)
    try:
        while gateway._proc is not None and gateway._proc.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        gateway.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
