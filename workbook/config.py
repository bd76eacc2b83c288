"""The app's settings: one frozen dataclass, read from environment variables once.

Every variable is documented in README.md ("Configuration"). The engine reads its own
``LM_ENGINE_*`` variables (see ``lm_engine.config``); everything else lives here and is
passed down explicitly, never read from the environment deep inside the code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class SettingsError(ValueError):
    """An environment variable holds a value the app cannot use."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be 1 or 0 (true/false), got {raw!r}")


def _auto_int(env: Mapping[str, str], name: str) -> int | None:
    """A whole number of at least 1, or None when unset or ``auto`` (decided at run time)."""
    raw = env.get(name, "").strip()
    if raw.lower() in ("", "auto"):
        return None
    try:
        return _int(env, name, 1)
    except SettingsError:
        # "at least 1" said too: a 0 is a whole number, and the message must say what is wrong.
        raise SettingsError(
            f"{name} must be a whole number or auto (at least 1), got {raw!r}"
        ) from None


def cpu_cores() -> int:
    """CPU cores the app may use (its affinity mask, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _url(env: Mapping[str, str], name: str) -> str:
    raw = env.get(name, "").strip()
    if not raw:
        return ""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise SettingsError(f"{name} must look like http(s)://host:port, got {raw!r}")
    return raw.rstrip("/")


def _timezone(env: Mapping[str, str], name: str) -> str:
    raw = env.get(name, "").strip()
    if raw:
        try:
            ZoneInfo(raw)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise SettingsError(
                f"{name} must be a time zone name such as Europe/Berlin, got {raw!r}"
            ) from exc
    return raw


@dataclass(frozen=True)
class Settings:
    """Everything the app can be configured with.

    Attributes:
        db_path: SQLite database file (``WORKBOOK_DB``).
        model_name: the course's model, an lm_engine name, Hugging Face id or local folder
            (``WORKBOOK_MODEL``).
        work_dir: parent of each student's private kernel working directory
            (``WORKBOOK_WORK_DIR``).
        catalog_path: the PyTorch tutorial catalog CSV; ``None`` uses the bundled one
            (``WORKBOOK_CATALOG``).
        cell_timeout_s: a cell running longer is interrupted (``WORKBOOK_CELL_TIMEOUT``).
        kernel_idle_s: an idle kernel is shut down after this long (``WORKBOOK_KERNEL_IDLE``).
        kernel_memory_mb: memory ceiling of one student's kernel; in hosted mode of the whole
            sandbox, all its processes together (``WORKBOOK_KERNEL_MEMORY_MB``).
        max_kernels: at most this many kernels at once, spares included
            (``WORKBOOK_MAX_KERNELS``); ``None`` (unset or ``auto``): as many as the memory
            holds (``workbook.kernels.capacity``).
        sandbox: run kernels inside bubblewrap, required on a shared server
            (``WORKBOOK_SANDBOX``).
        kernel_max_processes: process/thread cap inside a sandboxed kernel
            (``WORKBOOK_KERNEL_MAX_PROCS``).
        sandbox_uid: the unprivileged host uid sandboxed kernels run as when the app runs as
            root (``WORKBOOK_SANDBOX_UID``; unprivileged, they run as the app's uid).
        kernel_cpus: cores' worth of CPU time one sandbox may use at once, as root
            (``WORKBOOK_KERNEL_CPUS``).
        kernel_cpu_budget_s: CPU seconds a kernel process may use in its whole life, the
            hard limit no cell can lift (``WORKBOOK_KERNEL_CPU_BUDGET_S``).
        kernel_tmp_mb: size of a sandbox's private RAM-backed ``/tmp``
            (``WORKBOOK_KERNEL_TMP_MB``).
        kernel_home_mb: quota on a sandboxed student's home folder
            (``WORKBOOK_KERNEL_HOME_MB``).
        kernel_home_files: most files and folders in that home (``WORKBOOK_KERNEL_HOME_FILES``).
        cell_max_output_kb: output one cell may show; the rest is dropped with a note
            (``WORKBOOK_CELL_MAX_OUTPUT_KB``).
        kernel_max_file_mb: largest file a sandboxed kernel may write
            (``WORKBOOK_KERNEL_MAX_FILE_MB``).
        kernel_cell_cpu_s: CPU seconds one cell may use, a backstop behind the wall-clock
            ``cell_timeout_s`` (``WORKBOOK_KERNEL_CELL_CPU_S``).
        session_idle_min: a signed-in session expires after this many idle minutes
            (``WORKBOOK_SESSION_IDLE_MIN``).
        run_slots: how many cells and checks run at once; more wait in line
            (``WORKBOOK_RUN_SLOTS``, default: one per CPU core).
        spare_kernels: kernels kept started and warmed up for the next students
            (``WORKBOOK_SPARE_KERNELS``; 0 turns them off).
        preload: at start-up, load the reference model and start the spare kernels in the
            background (``WORKBOOK_PRELOAD``; off, both wait for first use).
        kernel_gateway: base URL of a Jupyter Kernel Gateway or Enterprise Gateway that runs
            the students' kernels; empty runs them on this machine
            (``WORKBOOK_KERNEL_GATEWAY``).
        kernel_gateway_token: the token the gateway requires
            (``WORKBOOK_KERNEL_GATEWAY_TOKEN``).
        kernel_gateway_kernel: the kernelspec name to start on the gateway
            (``WORKBOOK_KERNEL_GATEWAY_KERNEL``).
        course_timezone: the Moodle server's time zone, an IANA name such as
            ``Europe/Berlin``; empty = this server's own (``WORKBOOK_TIMEZONE``). Dates in
            the Moodle grading worksheet are written in it.
        public_url: the address students and Moodle reach the app at, such as
            ``https://workbook.example.org`` (``WORKBOOK_PUBLIC_URL``); the LTI URLs
            (``/lti/config``) are built from it. Empty: taken from each request's host.
        lti_clock_skew_s: how many seconds a launch's ``exp``/``iat`` may be off between
            the platform's clock and ours (``WORKBOOK_LTI_CLOCK_SKEW_S``).
        memory_reserve_mb: memory kept free of kernels for the app and the page cache when
            the kernel cap follows from memory (``WORKBOOK_MEMORY_RESERVE_MB``).
        kernel_idle_when_full_s: when every kernel the cap allows is taken, the longest-idle
            one is shut down for a student waiting in line, but only once it has been idle
            this long (``WORKBOOK_KERNEL_IDLE_WHEN_FULL``).
        kernel_home_images: hosted mode as root: each home folder is a loop-mounted ext4
            image of ``kernel_home_mb``, so the quota holds whatever the burst
            (``WORKBOOK_KERNEL_HOME_IMAGES``; where loop devices fail, the watchdog alone).
    """

    db_path: Path = Path("data/workbook.db")
    model_name: str = "smollm2-135m"
    work_dir: Path = Path("data/kernels")
    catalog_path: Path | None = None
    cell_timeout_s: int = 30
    kernel_idle_s: int = 1800
    kernel_memory_mb: int = 4096
    max_kernels: int | None = None
    sandbox: bool = False
    kernel_max_processes: int = 256
    kernel_max_file_mb: int = 100
    kernel_cell_cpu_s: int = 120
    sandbox_uid: int = 65534
    kernel_cpus: int = 1
    kernel_cpu_budget_s: int = 3600
    kernel_tmp_mb: int = 256
    kernel_home_mb: int = 500
    kernel_home_files: int = 10000
    cell_max_output_kb: int = 1024
    session_idle_min: int = 120
    run_slots: int = field(default_factory=cpu_cores)
    spare_kernels: int = 2
    preload: bool = True
    kernel_gateway: str = ""
    kernel_gateway_token: str = ""
    kernel_gateway_kernel: str = "workbook"
    course_timezone: str = ""
    public_url: str = ""
    lti_clock_skew_s: int = 30
    memory_reserve_mb: int = 2048
    kernel_idle_when_full_s: int = 600
    kernel_home_images: bool = True
    kernel_template: bool = True

    def timezone(self) -> tzinfo | None:
        """The course's time zone; ``None`` means this server's local time zone."""
        return ZoneInfo(self.course_timezone) if self.course_timezone else None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``env`` (default: ``os.environ``).

        Raises:
            SettingsError: a variable is set to a value that cannot be used.
        """
        env = os.environ if env is None else env
        catalog = env.get("WORKBOOK_CATALOG", "").strip()
        return cls(
            db_path=Path(env.get("WORKBOOK_DB", "").strip() or cls.db_path),
            model_name=env.get("WORKBOOK_MODEL", "").strip() or cls.model_name,
            work_dir=Path(env.get("WORKBOOK_WORK_DIR", "").strip() or cls.work_dir),
            catalog_path=Path(catalog) if catalog else None,
            cell_timeout_s=_int(env, "WORKBOOK_CELL_TIMEOUT", cls.cell_timeout_s),
            kernel_idle_s=_int(env, "WORKBOOK_KERNEL_IDLE", cls.kernel_idle_s),
            kernel_memory_mb=_int(env, "WORKBOOK_KERNEL_MEMORY_MB", cls.kernel_memory_mb, 256),
            max_kernels=_auto_int(env, "WORKBOOK_MAX_KERNELS"),
            sandbox=_bool(env, "WORKBOOK_SANDBOX", cls.sandbox),
            kernel_max_processes=_int(env, "WORKBOOK_KERNEL_MAX_PROCS", cls.kernel_max_processes),
            kernel_max_file_mb=_int(env, "WORKBOOK_KERNEL_MAX_FILE_MB", cls.kernel_max_file_mb),
            kernel_cell_cpu_s=_int(env, "WORKBOOK_KERNEL_CELL_CPU_S", cls.kernel_cell_cpu_s),
            sandbox_uid=_int(env, "WORKBOOK_SANDBOX_UID", cls.sandbox_uid),
            kernel_cpus=_int(env, "WORKBOOK_KERNEL_CPUS", cls.kernel_cpus),
            kernel_cpu_budget_s=_int(
                env, "WORKBOOK_KERNEL_CPU_BUDGET_S", cls.kernel_cpu_budget_s, 10
            ),
            kernel_tmp_mb=_int(env, "WORKBOOK_KERNEL_TMP_MB", cls.kernel_tmp_mb),
            kernel_home_mb=_int(env, "WORKBOOK_KERNEL_HOME_MB", cls.kernel_home_mb),
            kernel_home_files=_int(env, "WORKBOOK_KERNEL_HOME_FILES", cls.kernel_home_files),
            cell_max_output_kb=_int(env, "WORKBOOK_CELL_MAX_OUTPUT_KB", cls.cell_max_output_kb),
            session_idle_min=_int(env, "WORKBOOK_SESSION_IDLE_MIN", cls.session_idle_min),
            run_slots=_int(env, "WORKBOOK_RUN_SLOTS", cpu_cores()),
            spare_kernels=_int(env, "WORKBOOK_SPARE_KERNELS", cls.spare_kernels, 0),
            preload=_bool(env, "WORKBOOK_PRELOAD", cls.preload),
            kernel_gateway=_url(env, "WORKBOOK_KERNEL_GATEWAY"),
            kernel_gateway_token=env.get("WORKBOOK_KERNEL_GATEWAY_TOKEN", "").strip(),
            kernel_gateway_kernel=env.get("WORKBOOK_KERNEL_GATEWAY_KERNEL", "").strip()
            or cls.kernel_gateway_kernel,
            course_timezone=_timezone(env, "WORKBOOK_TIMEZONE"),
            public_url=_url(env, "WORKBOOK_PUBLIC_URL"),
            lti_clock_skew_s=_int(env, "WORKBOOK_LTI_CLOCK_SKEW_S", cls.lti_clock_skew_s, 0),
            memory_reserve_mb=_int(env, "WORKBOOK_MEMORY_RESERVE_MB", cls.memory_reserve_mb, 0),
            kernel_idle_when_full_s=_int(
                env, "WORKBOOK_KERNEL_IDLE_WHEN_FULL", cls.kernel_idle_when_full_s, 0
            ),
            kernel_home_images=_bool(env, "WORKBOOK_KERNEL_HOME_IMAGES", cls.kernel_home_images),
            kernel_template=_bool(env, "WORKBOOK_KERNEL_TEMPLATE", cls.kernel_template),
        )
