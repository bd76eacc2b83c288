"""How tensors are compared and summarised: tolerances, per-row summaries, where they differ.

A small tensor travels whole and is compared entry by entry; a larger one travels as a
per-row summary (:class:`Rows`, computed by the kernel's own
:func:`workbook.exercise.check_kernel._k_summary`) and is compared with the same summary of
the reference. :func:`tensor_problems` says what differs (type, dtype, shape, then where the
values differ), never what the values should be.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from workbook.exercise import check_kernel
from workbook.exercise.cause_ids import problem
from workbook.exercise.digest import a_type, fmt_shape, kind_of, tensor_values


@dataclass(frozen=True)
class Tolerance:
    """How close the student's float32 values must be to the reference's.

    Attributes:
        atol, rtol: per entry, for tensors that travel whole and for a row's max and min.
        rms_atol, rms_rtol: for summarised rows, on the root mean square of the difference
            (estimated from the sketches), relative to the reference row's root mean square.
    """

    atol: float
    rtol: float
    rms_atol: float
    rms_rtol: float


# The same weights in two processes give equal logits on one CPU (measured: 0.0 difference
# between 1 and 2 threads); the tolerances leave room for another device or attention
# kernel in the engine. Per entry as before; a summarised logits row must agree to about
# 1e-3 in root mean square, which still catches a single logit changed by ~0.7.
LOGITS_TOL = Tolerance(atol=2e-3, rtol=1e-3, rms_atol=5e-4, rms_rtol=2e-4)
PROBS_TOL = Tolerance(atol=1e-5, rtol=1e-3, rms_atol=1e-6, rms_rtol=2e-3)
PROB_RTOL = 1e-3  # single probabilities and table cells
SKETCH_SIZE = 16  # projections per row: the sketch's estimate is within ~+-35% (chi2, 16)


def _index(flat_index: int, shape: Sequence[int]) -> str:
    idx = np.unravel_index(flat_index, tuple(shape)) if shape else ()
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"


@dataclass(frozen=True)
class Rows:
    """Per-row summary of a tensor (rows = its last dimension), from either side."""

    columns: int
    mean: np.ndarray
    rms: np.ndarray
    max: np.ndarray
    argmax: np.ndarray
    min: np.ndarray
    sketch: np.ndarray  # (rows, SKETCH_SIZE)
    nonfinite: int

    @classmethod
    def from_summary(cls, summary: Mapping) -> Rows:
        def arr(key: str) -> np.ndarray:
            return np.asarray(summary.get(key, []), dtype=np.float64)

        return cls(
            columns=int(summary["columns"]),
            mean=arr("mean"),
            rms=arr("rms"),
            max=arr("max"),
            argmax=np.asarray(summary.get("argmax", []), dtype=np.int64),
            min=arr("min"),
            sketch=arr("sketch").reshape(len(summary.get("mean", [])), -1),
            nonfinite=int(summary.get("nonfinite", 0)),
        )

    @classmethod
    def of(cls, tensor: torch.Tensor) -> Rows:
        """The summary of a server-side tensor: the kernel's own code, run here."""
        return cls.from_summary(check_kernel._k_summary(tensor.float(), SKETCH_SIZE))

    def __len__(self) -> int:
        return len(self.mean)

    def sum(self, row: int) -> float:
        return float(self.mean[row]) * self.columns

    def matches(self, row: int, other: Rows, other_row: int, tol: Tolerance) -> bool:
        """Whether row ``row`` equals ``other``'s row ``other_row`` within ``tol``."""
        if self.columns != other.columns or self.nonfinite or other.nonfinite:
            return False
        scale = tol.rms_atol + tol.rms_rtol * float(other.rms[other_row])
        difference = self.sketch[row] - other.sketch[other_row]
        if math.sqrt(float(np.mean(difference**2))) > scale:
            return False
        if abs(self.mean[row] - other.mean[other_row]) > scale:
            return False
        if abs(self.rms[row] - other.rms[other_row]) > scale:
            return False
        for mine, theirs in (
            (self.max[row], other.max[other_row]),
            (self.min[row], other.min[other_row]),
        ):
            if abs(mine - theirs) > tol.atol + tol.rtol * abs(theirs):
                return False
        return True

    def mismatched_rows(self, other: Rows, tol: Tolerance) -> list[int]:
        return [i for i in range(len(self)) if not self.matches(i, other, i, tol)]


def described_rows(desc: Mapping | None) -> Rows | None:
    """The student's tensor as a per-row summary (computed here if it travelled whole)."""
    if kind_of(desc) != "tensor":
        return None
    if "summary" in desc:
        return Rows.from_summary(desc["summary"]) if "mean" in desc["summary"] else None
    values = tensor_values(desc)
    if values is None or values.numel() == 0:
        return None
    return Rows.of(values.float())


def same(
    desc: Mapping | None,
    expected: torch.Tensor,
    tol: Tolerance | None,
    expected_rows: Rows | None = None,
) -> bool:
    """Whether the described tensor equals ``expected`` (exactly for ints, else within tol)."""
    if kind_of(desc) != "tensor" or list(desc["shape"]) != list(expected.shape):
        return False
    values = tensor_values(desc)
    if values is not None:
        if tol is None:
            return bool(torch.equal(values.to(torch.int64), expected.to(torch.int64)))
        want = expected.to(torch.float32)
        return bool(torch.isclose(values.float(), want, rtol=tol.rtol, atol=tol.atol).all())
    if tol is None:
        return False
    mine = described_rows(desc)
    if mine is None:
        return False
    theirs = expected_rows if expected_rows is not None else Rows.of(expected)
    return len(mine) == len(theirs) and not mine.mismatched_rows(theirs, tol)


def _where_it_differs(desc: Mapping, expected: torch.Tensor, tol: Tolerance | None) -> str:
    """Where the described tensor differs from ``expected`` (no values: they are the answer)."""
    shape = list(desc["shape"])
    values = tensor_values(desc)
    if values is not None:
        got = values.reshape(-1)
        want = expected.reshape(-1)
        if tol is None:
            bad = (got.to(torch.int64) != want.to(torch.int64)).nonzero().reshape(-1)
        else:
            close = torch.isclose(got.float(), want.float(), rtol=tol.rtol, atol=tol.atol)
            bad = (~close).nonzero().reshape(-1)
        if bad.numel() == 0:
            return ""
        return (
            f"in {bad.numel():,} of {got.numel():,} entries; the first is at "
            f"{_index(int(bad[0]), shape)}"
        )
    mine, theirs = described_rows(desc), Rows.of(expected)
    if mine is None or tol is None:
        return ""
    bad_rows = mine.mismatched_rows(theirs, tol)
    if not bad_rows:
        return ""
    lead = np.unravel_index(bad_rows[0], tuple(shape[:-1])) if len(shape) > 1 else ()
    first = "[" + ", ".join([*(str(int(i)) for i in lead), ":"]) + "]"
    return (
        f"in {len(bad_rows):,} of {len(mine):,} rows along the last dimension; the first is {first}"
    )


def tensor_problems(
    label: str,
    desc: Mapping,
    expected: torch.Tensor,
    *,
    integer: bool = False,
    tol: Tolerance | None = None,
    shape_hint: str = "",
    expected_rows: Rows | None = None,
) -> list[str]:
    """Compare a described tensor with ``expected``: type, dtype, shape, then values.

    The message says where the values differ, never what they should be.
    """
    if kind_of(desc) != "tensor":
        return [problem("not_a_tensor", f"`{label}` is {a_type(desc)}, not a PyTorch tensor.")]
    shape = list(desc["shape"])
    if integer and desc.get("floating"):
        return [
            problem(
                "wrong_dtype",
                f"`{label}` has dtype {desc['dtype']}; token ids are integers (torch.int64).",
            )
        ]
    if not integer and not desc.get("floating"):
        return [
            problem(
                "wrong_dtype",
                f"`{label}` has dtype {desc['dtype']}; expected floating-point numbers "
                "(torch.float32).",
            )
        ]
    if shape != list(expected.shape):
        return [
            problem(
                "wrong_shape",
                f"`{label}` has shape {fmt_shape(shape)}; expected "
                f"{fmt_shape(expected.shape)}{shape_hint}.",
            )
        ]
    if "data" not in desc and "summary" not in desc:
        return [problem("read_failed", f"`{label}` could not be read ({desc['dtype']}).")]
    summary = desc.get("summary") or {}
    if summary.get("nonfinite"):
        return [problem("nan_values", f"`{label}` contains NaN or infinite values.")]
    if same(desc, expected, None if integer else tol, expected_rows):
        return []
    where = _where_it_differs(desc, expected, None if integer else tol)
    dtype_note = ""
    if not integer and desc["dtype"] != "torch.float32":
        dtype_note = f" (its dtype is {desc['dtype']}; the reference is torch.float32)"
    where = f" {where}" if where else ""
    return [
        problem("wrong_value", f"`{label}` differs from the expected values{where}{dtype_note}.")
    ]
