"""A fake student kernel for the check tests: exec in a plain dict, IPython-like enough.

Cells are compiled under a unique file name registered in ``linecache`` (as IPython does), so
``inspect.getsource`` works on functions the "student" defines. ``inspect`` round-trips the
result through JSON, as the real kernel's transport does.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import linecache
from pathlib import Path
from typing import Any

from lm_engine import ModelSource
from workbook import exercises


class FakeKernel:
    """Runs cells and inspection snippets in one namespace, in this process."""

    def __init__(self) -> None:
        self.ns: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        self.ns["display"] = lambda *objs, **kw: None  # IPython's display builtin
        self.cells = 0
        self.inspections = 0

    def execute(self, code: str) -> list[dict]:
        """Run a cell; return its stdout as nbformat stream outputs."""
        self.cells += 1
        filename = f"<fake-cell-{self.cells}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, filename, "exec"), self.ns)
        text = out.getvalue()
        return [{"output_type": "stream", "name": "stdout", "text": text}] if text else []

    def inspect(self, code: str) -> Any:
        self.inspections += 1
        exec(compile(code, "<inspection>", "exec"), self.ns)
        return json.loads(json.dumps(self.ns.pop("__workbook_result__")))


def save_tiny(folder: Path, model, tokenizer) -> ModelSource:
    """Write the tiny model where the setup cell's ``from_pretrained`` can read it."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return ModelSource(name="tiny", path=str(folder), tokenizer_kwargs={})


def solution(step_id: str) -> str:
    return exercises.step(step_id).solution


def run_solutions(kernel: FakeKernel, upto: int) -> list[dict]:
    """Run the reference solutions of steps 1..upto; return the last cell's outputs."""
    outputs: list[dict] = []
    for number in range(1, upto + 1):
        outputs = kernel.execute(solution(f"step{number}"))
    return outputs
