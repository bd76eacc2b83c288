"""What running code in a kernel gives back.

:class:`ExecutionResult` is a cell's outputs, its number, a status and the student's message,
the same for local and gateway kernels. An inspection (a check's silent snippet) gives back
one JSON value instead, read from its execute_reply by :func:`inspection_value`.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from workbook.kernels.errors import KernelError
from workbook.web.outputs import strip_ansi

__all__ = [
    "INSPECT_EXPRESSION",
    "ExecutionResult",
    "Status",
    "StopReason",
    "inspection_value",
    "strip_ansi",
]

Status = Literal["ok", "error", "timeout", "died"]
# Which limit stopped a cell: its own running time, (a backstop for an overloaded server) the
# wall time since it was admitted, or a limit in plain wall time (a kernel on a gateway).
StopReason = Literal["own", "wall", "plain"]


@dataclass(frozen=True)
class ExecutionResult:
    """What running one cell produced.

    Attributes:
        outputs: nbformat v4 output dicts (stream, display_data, execute_result, error).
        execution_count: the cell's number, as Jupyter shows ``[n]``; ``None`` if it never ran.
        status: ``"ok"``, ``"error"`` (an exception, shown in ``outputs``), ``"timeout"``
            (interrupted) or ``"died"`` (the kernel crashed and was restarted).
        message: plain words for the student when something went wrong, ``""`` otherwise.
    """

    outputs: list[dict] = field(default_factory=list)
    execution_count: int | None = None
    status: Status = "ok"
    message: str = ""


# Evaluated after an inspection snippet: the JSON of what it bound to ``__workbook_result__``.
INSPECT_EXPRESSION = "__import__('json').dumps(globals().pop('__workbook_result__'))"


def inspection_value(reply: dict) -> Any:
    """The value an inspection snippet returned, from its execute_reply.

    Raises:
        KernelError: the snippet failed or bound no result (the message is the traceback).
    """
    if reply.get("status") != "ok":
        trace = "\n".join(reply.get("traceback", [])) or reply.get("evalue", "")
        raise KernelError(strip_ansi(trace))
    result = reply.get("user_expressions", {}).get("r", {})
    if result.get("status") != "ok":
        trace = "\n".join(result.get("traceback", [])) or result.get("evalue", "")
        raise KernelError(strip_ansi(trace))
    return json.loads(ast.literal_eval(result["data"]["text/plain"]))
