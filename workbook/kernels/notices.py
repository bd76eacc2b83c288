"""What a student reads when their kernel was stopped or a limit cut a cell short.

Every kernel, local or on a gateway, says these the same way: that it died (for a local
kernel, which limit stopped it, see :mod:`workbook.kernels.limits`), that an idle kernel was
shut down, that every kernel slot is taken, that a cell used up its CPU time or memory or
printed more than a cell may show, that a cell ran past its time limit (which one), that one
message was over the size the app accepts. Gateway kernels only: a broken connection, a
kernel the gateway lost, and a kernel host without the course's model. Each message says
what to do next.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from workbook.config import Settings
from workbook.kernels.cell_clock import WALL_BACKSTOP_FACTOR
from workbook.kernels.result import StopReason, strip_ansi

__all__ = [
    "CUT_OFF",
    "LOST_WHILE_IDLE",
    "MODEL_MISSING",
    "SERVER_BUSY",
    "cell_error_message",
    "death_notice",
    "idle_cull_notice",
    "is_memory_error",
    "message_too_big",
    "model_missing_message",
    "over_limit",
    "over_quota_notice",
    "with_truncation_note",
]


SERVER_BUSY = "The server is busy: all student kernels are in use. Please try again in a minute."


def death_notice(
    settings: Settings, reason: str, *, while_idle: bool, restarted: bool = True
) -> str:
    """Plain words for the student: why the kernel stopped, and what to do now.

    Args:
        settings: the limits the words name.
        reason: which limit stopped the kernel (``memory``, ``disk``, ``cpu``,
            ``cpu_budget``), or ``""`` when none did.
        while_idle: the kernel stopped between runs, not during the one just made.
        restarted: a fresh kernel took its place (``False``: the words stop at why; the
            caller says why no fresh one started).
    """
    s = settings
    why = {
        "memory": (
            f"all its processes together needed more than the {s.kernel_memory_mb} MB of "
            "memory each student may use"
        ),
        "disk": (
            f"your files grew past the {s.kernel_home_mb} MB (or {s.kernel_home_files} "
            "files) your folder may hold (your files are kept; delete files you do not need)"
        ),
        "cpu": "a program it started kept using the CPU after its cell had finished",
        "cpu_budget": f"it used up its CPU time budget ({s.kernel_cpu_budget_s} s)",
    }.get(reason, "")
    if while_idle:
        what = "Your kernel stopped while you were away"
        what += f", because {why}" if why else " (it crashed or was stopped by the server)"
        return (
            f"{what}. It has been restarted, so the variables from your earlier cells are "
            "gone: click **Run all above** to rebuild them, then run this cell again."
        )
    if not restarted:
        return f"Your kernel was stopped because {why}." if why else "Your kernel stopped."
    if why:
        return (
            f"Your kernel was stopped because {why}. It has been restarted: click **Run all "
            "above** to rebuild your variables."
        )
    return (
        "Your kernel stopped unexpectedly (it may have run out of memory or "
        "crashed) and has been restarted. Run the cells above again."
    )


def idle_cull_notice(settings: Settings) -> str:
    """What a student reads after the pool shut their idle kernel down (any kind of kernel)."""
    minutes = max(1, round(settings.kernel_idle_s / 60))
    return (
        f"Your kernel was shut down after {minutes} minutes without use, so the "
        "variables from your earlier cells are gone: click **Run all above** to "
        "rebuild them, then run this cell again."
    )


def over_limit(stopped_by: StopReason | None, limit: float) -> str:
    """The first half of a timeout message: which limit the cell crossed.

    Every kernel, local or on a gateway, words its timeouts with this; ``"plain"`` is a
    limit counted in wall time (a kernel on another host, whose CPU waits the app cannot see).
    """
    if stopped_by == "plain":
        return f"This cell ran longer than its limit of {limit:g} s"
    if stopped_by == "wall":
        return (
            f"The server is very busy: this cell had not finished after "
            f"{limit * WALL_BACKSTOP_FACTOR:g} s (waiting for the server included; try again "
            "in a few minutes)"
        )
    return (
        f"This cell ran longer than its limit of {limit:g} s (only the time it actually "
        "ran counts, not time spent waiting for a busy server)"
    )


# How torch, numpy and the OS word "out of memory" when an allocation hits the kernel's
# address-space limit: MemoryError, or a RuntimeError from torch's allocator or from mmap.
_MEMORY_ERROR = re.compile(
    r"out of memory|not enough memory|can't allocate memory|cannot allocate memory"
    r"|bad_alloc|mmap|errno 12",
    re.IGNORECASE,
)


def is_memory_error(error: Mapping[str, Any]) -> bool:
    """Whether an nbformat error output is the kernel running out of memory."""
    if error.get("ename") in ("MemoryError", "OutOfMemoryError"):
        return True
    return error.get("ename") in ("RuntimeError", "OSError") and bool(
        _MEMORY_ERROR.search(str(error.get("evalue", "")))
    )


def cell_error_message(settings: Settings, error: Mapping[str, Any] | None) -> str:
    """Plain words for a cell that failed on one of the kernel's limits, else ``""``.

    Args:
        settings: the limits the words name.
        error: the cell's nbformat ``error`` output (``None``: it had none).

    Returns:
        The message for a cell stopped by its CPU time limit or out of memory; ``""`` for
        the student's own errors (their traceback says what went wrong).
    """
    if error is None:
        return ""
    if error.get("ename") == "CellCPUTimeExceeded":
        return (
            f"This cell used more than {settings.kernel_cell_cpu_s} s of CPU time and was "
            "stopped. Your variables are kept."
        )
    if error.get("ename") in ("OSError", "IOError") and _DISK_FULL.search(
        str(error.get("evalue", ""))
    ):
        return _disk_full_message(settings)
    if is_memory_error(error):
        return (
            f"This cell needed more memory than the {settings.kernel_memory_mb} MB a kernel "
            "may use, so it stopped. Your variables are kept. Delete large variables you no "
            "longer need (`del name`), or restart the kernel and run the cells above again."
        )
    return ""


def with_truncation_note(message: str, settings: Settings) -> str:
    """``message`` plus the note that the cell's output was cut at the cap."""
    note = (
        f"This cell's output passed the {settings.cell_max_output_kb} KB a cell may show; "
        "the rest was dropped."
    )
    return f"{message} {note}" if message else note


def message_too_big(max_bytes: int) -> str:
    """What a student reads when one message of their cell was over what the app accepts."""
    return (
        f"This cell sent more than {max_bytes // (1024 * 1024)} MB in a single output, more "
        "than the app accepts, so the connection to your kernel was closed and that output "
        "is lost. Your code is saved. Print a summary instead (a shape, a few rows) and run "
        "it again."
    )


# What both disk messages end with: how to make room, in code a student can paste.
_DELETE_HINT = (
    "Delete files you do not need, e.g. `import os; os.remove('big.bin')` "
    "(if writing still fails then, restart the kernel)."
)


def over_quota_notice(settings: Settings, *, image: bool = False) -> str:
    """Told when a kernel starts with the student's folder already over its quota.

    Args:
        settings: the quota the words name.
        image: the folder is a size-limited filesystem (writes fail with "No space left on
            device"); else the kernel starts with no room for any file to grow ("File too
            large") and is stopped if the folder grows anyway.
    """
    what = "No space left on device" if image else "File too large"
    return (
        f"Your folder holds more than the {settings.kernel_home_mb} MB (or "
        f"{settings.kernel_home_files} files) it may, so your kernel cannot write to files "
        f'now (writing fails with "{what}"). Your files are kept. {_DELETE_HINT}'
    )


# errno 27 (EFBIG) is the file limit the app lowers as a folder fills; errno 28 (ENOSPC) a
# home image that is full, or the sandbox's /tmp.
_DISK_FULL = re.compile(r"\[Errno (27|28)\]|File too large|No space left on device")


def _disk_full_message(settings: Settings) -> str:
    return (
        f"This cell could not write a file: your folder may hold {settings.kernel_home_mb} MB "
        f"and {settings.kernel_home_files} files (one file at most "
        f"{settings.kernel_max_file_mb} MB; /tmp {settings.kernel_tmp_mb} MB). Your "
        f"variables and files are kept. {_DELETE_HINT}"
    )


# ----------------------------------------------------------------- gateway kernels
CUT_OFF = (
    "The connection to the kernel server broke while this cell ran, so its output is lost. "
    "Your code is saved. Try again in a minute; if your variables are gone, use Run all above."
)
LOST_WHILE_IDLE = (
    "Your kernel stopped since your last run (the kernel server restarted or lost it), so this "
    "cell ran in a new kernel and variables from earlier cells are gone. Run the cells above "
    "again (Run all above)."
)
MODEL_MISSING = (
    "The course's model is not available on the kernel server ({why}). Your code is fine: "
    "tell your instructor, who can find the fix in docs/deployment.md."
)


def model_missing_message(error: dict) -> str:
    """The student's message when the setup cell cannot load the model on the kernel host.

    Args:
        error: an nbformat ``error`` output.

    Returns:
        :data:`MODEL_MISSING` filled in when the error comes from a kernel host without
        ``lm_engine`` or without a usable model cache, else ``""``.
    """
    ename = error.get("ename", "")
    evalue = error.get("evalue", "")
    trace = strip_ansi("\n".join(error.get("traceback", [])))
    if ename == "ModuleNotFoundError" and "lm_engine" in evalue:
        return MODEL_MISSING.format(why="its kernels cannot import lm_engine")
    if ename == "ModelNotAvailable":
        return MODEL_MISSING.format(why="no model files there")
    # A read-only or missing cache volume: building the cache there fails with an OSError.
    if ename.endswith("Error") and "lm_engine/loaders.py" in trace and _is_os_error(ename):
        return MODEL_MISSING.format(why="its model cache is missing or cannot be read")
    return ""


def _is_os_error(ename: str) -> bool:
    import builtins

    kind = getattr(builtins, ename, None)
    return isinstance(kind, type) and issubclass(kind, OSError)
