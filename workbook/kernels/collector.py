"""Output capture: a run's iopub messages become nbformat outputs, like a notebook shows them.

:class:`Collector` merges streams, follows display updates and ``clear_output``, and caps what
one cell may show (past the cap, the rest is dropped and one note says so). Local and gateway
kernels both collect through it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Collector", "error_output"]


def _size(value: Any) -> int:
    """Roughly how many characters a message's content holds."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_size(v) for v in value.values())
    if isinstance(value, list):
        return sum(_size(v) for v in value)
    return 8


def _output_size(output: dict) -> int:
    """Roughly how many characters an nbformat output holds (text and data values)."""
    if output["output_type"] == "stream":
        return len(output["text"])
    return _size(output.get("data", {})) + _size(output.get("traceback", []))


class Collector:
    """Turns iopub messages of one request into nbformat outputs (like nbclient).

    Args:
        max_bytes: output the cell may show; past it, further output is dropped and one
            note says so (the student's messages still arrive, so memory stays bounded by
            this size, not by what the cell printed). ``0`` = no cap.
    """

    def __init__(self, max_bytes: int = 0) -> None:
        self.outputs: list[dict] = []
        self.execution_count: int | None = None
        self.truncated = False
        self._max_bytes = max_bytes
        self._received = 0  # characters received since the outputs were last cleared
        self._clear_pending = False
        self._display_index: dict[str, list[int]] = {}

    def _truncate(self) -> None:
        """Cut the outputs down to the cap and add the note (once)."""
        budget = self._max_bytes
        kept: list[dict] = []
        for output in self.outputs:
            size = _output_size(output)
            if size <= budget:
                kept.append(output)
                budget -= size
            elif output["output_type"] == "stream" and budget > 0:
                kept.append({**output, "text": output["text"][:budget]})
                budget = 0
            else:
                budget = 0
        kb = self._max_bytes // 1024
        note = f"\n[output truncated: this cell printed more than {kb} KB; the rest is not shown]\n"
        kept.append({"output_type": "stream", "name": "stderr", "text": note})
        self.outputs = kept
        self._display_index.clear()
        self.truncated = True

    def _append(self, output: dict) -> None:
        if self._clear_pending:
            self.outputs.clear()
            self._display_index.clear()
            self._clear_pending = False
            self._received = _output_size(output)
        self.outputs.append(output)

    def add(self, msg: dict) -> None:
        if self.truncated:
            return  # over the cap: drop everything else this cell sends
        self._received += _size(msg["content"])
        self._add(msg)
        if self._max_bytes and self._received > self._max_bytes:
            self._truncate()

    def _add(self, msg: dict) -> None:
        kind = msg["msg_type"]
        content = msg["content"]
        if kind == "execute_input":
            self.execution_count = content.get("execution_count")
        elif kind == "stream":
            last = self.outputs[-1] if self.outputs and not self._clear_pending else None
            if last and last["output_type"] == "stream" and last["name"] == content["name"]:
                last["text"] += content["text"]  # merge like Jupyter does
            else:
                self._append(
                    {"output_type": "stream", "name": content["name"], "text": content["text"]}
                )
        elif kind in ("display_data", "execute_result"):
            output: dict[str, Any] = {
                "output_type": kind,
                "data": content.get("data", {}),
                "metadata": content.get("metadata", {}),
            }
            if kind == "execute_result":
                output["execution_count"] = content.get("execution_count")
                self.execution_count = content.get("execution_count")
            self._append(output)
            display_id = content.get("transient", {}).get("display_id")
            if display_id:
                self._display_index.setdefault(display_id, []).append(len(self.outputs) - 1)
        elif kind == "update_display_data":
            display_id = content.get("transient", {}).get("display_id")
            for i in self._display_index.get(display_id, []):
                self.outputs[i]["data"] = content.get("data", {})
                self.outputs[i]["metadata"] = content.get("metadata", {})
        elif kind == "error":
            self._append(
                {
                    "output_type": "error",
                    "ename": content.get("ename", ""),
                    "evalue": content.get("evalue", ""),
                    "traceback": content.get("traceback", []),
                }
            )
        elif kind == "clear_output":
            if content.get("wait"):
                self._clear_pending = True
            else:
                self.outputs.clear()
                self._display_index.clear()
                self._received = 0


def error_output(collector: Collector, reply: dict | None) -> dict | None:
    """The cell's error output; one is added from the reply when iopub carried none."""
    error = next((o for o in collector.outputs if o["output_type"] == "error"), None)
    if error is None and reply is not None and reply.get("status") == "error":
        collector.outputs.append(
            {
                "output_type": "error",
                "ename": reply.get("ename", ""),
                "evalue": reply.get("evalue", ""),
                "traceback": reply.get("traceback", []),
            }
        )
        error = collector.outputs[-1]
    return error
