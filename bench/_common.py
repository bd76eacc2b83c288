"""What every benchmark shares: the machine line, a median timer, milliseconds, a forward pass.

The leading underscore keeps ``python -m bench`` from running this module as a benchmark.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable


def machine() -> str:
    """One line: platform, CPUs, torch and its threads, Python, and the load right now."""
    import torch

    return (
        f"{platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f} at start"
    )


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``fn()`` over ``repeat`` calls, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ms(seconds: float, digits: int = 0) -> str:
    """``seconds`` as milliseconds, e.g. ``"12 ms"`` (``digits`` decimals)."""
    return f"{seconds * 1000:.{digits}f} ms"


def bare_forward(lm) -> Callable[[], object]:
    """The baseline: the model's forward pass on the start phrase, without the workbook."""
    import torch

    from workbook.exercise.content import START_PHRASE

    input_ids = lm.tokenizer(START_PHRASE, return_tensors="pt")["input_ids"]  # (1, n)

    def forward() -> object:
        with torch.no_grad():
            return lm.model(input_ids).logits  # (1, n, V)

    return forward
