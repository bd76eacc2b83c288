"""Reading the kernel's digest: what each description holds, and the words to say it with.

The inspection snippet describes each of the student's objects as a small mapping (its
``kind``, type name, shape, dtype, and its values or a summary). These helpers read those
descriptions and give the messages their words: a type with its article, a shape as a list,
a number, a clipped phrase, and what to say when a name is missing or ``phrase`` is unusable.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from workbook.exercise.cause_ids import problem


def kind_of(desc: Mapping | None) -> str:
    return (desc or {}).get("kind", "missing")


def short_type(desc: Mapping) -> str:
    return str(desc.get("type", "?")).rsplit(".", 1)[-1]


# Type names said letter by letter, so they take "an" although they start with a consonant.
_SPELLED = ("ndarray", "nd", "fp", "mps", "rng", "lstm")


def a(word: str) -> str:
    """``word`` with its indefinite article: "an int", "an ndarray", "a list"."""
    vowel_sound = word[:1].lower() in "aeiou" or word.lower().startswith(_SPELLED)
    return f"{'an' if vowel_sound else 'a'} {word}"


def a_type(desc: Mapping) -> str:
    return a(short_type(desc))


def fmt_shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def fmt(x: float) -> str:
    return f"{x:.6g}"


def tensor_values(desc: Mapping | None) -> torch.Tensor | None:
    """A whole tensor that travelled whole, in its shape (float32 or int64); else None."""
    if kind_of(desc) != "tensor" or "data" not in desc or desc.get("truncated"):
        return None
    raw = base64.b64decode(desc["data"])
    dtype = "<f4" if desc["encoding"] == "float32" else "<i8"
    flat = torch.from_numpy(np.frombuffer(raw, dtype=dtype).copy())
    return flat.reshape(desc["shape"])


def absence(label: str, desc: Mapping | None, defined_in: str) -> str | None:
    """A problem sentence if ``label`` is missing or could not be read, else None."""
    kind = kind_of(desc)
    if kind == "missing":
        where = (desc or {}).get("where", label)
        if "parent" in (desc or {}):
            missing = where[len(desc["parent"]) :].lstrip(".")
            return problem("not_defined", f"`{desc['parent']}` has no `{missing}`.")
        return problem(
            "not_defined", f"`{where}` is not defined yet: {defined_in}, then run the cell."
        )
    if kind == "error":
        return problem(
            "read_failed", f"Reading `{desc.get('where', label)}` failed with {desc.get('error')}."
        )
    return None


def problem_with_phrase(digest: Mapping) -> str | None:
    desc = digest["values"].get("phrase")
    absent = absence("phrase", desc, "set it to a string in step 1")
    if absent:
        return absent
    if desc.get("kind") != "scalar" or not isinstance(desc.get("value"), str):
        return problem(
            "phrase_unusable", f"`phrase` is {a_type(desc)}; it should be a string (step 1)."
        )
    if not desc["value"].strip():
        return problem("phrase_unusable", "`phrase` is empty; type a phrase in step 1.")
    if desc.get("truncated"):
        return problem(
            "phrase_unusable",
            "`phrase` is too long to check; use a phrase of a few sentences at most.",
        )
    return None


def student_phrase(digest: Mapping) -> str | None:
    if problem_with_phrase(digest) is not None:
        return None
    return digest["values"]["phrase"]["value"]


def scalar_id(desc: Mapping | None) -> tuple[int | None, str | None]:
    """Read a token id given as an int or a one-element integer tensor."""
    kind = kind_of(desc)
    if (
        kind == "scalar"
        and isinstance(desc.get("value"), int)
        and not isinstance(desc.get("value"), bool)
    ):
        return desc["value"], None
    if kind == "tensor":
        if desc.get("floating"):
            return None, f"has dtype {desc['dtype']}; a token id is an integer"
        if math.prod(desc["shape"]) != 1:
            return None, f"has shape {fmt_shape(desc['shape'])}; expected a single token id"
        values = tensor_values(desc)
        return (int(values.reshape(-1)[0]), None) if values is not None else (None, "is unreadable")
    return None, f"is {a_type(desc or {})}; expected a token id (an integer)"


def clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
