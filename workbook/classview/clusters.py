"""Solution clusters: students' latest code grouped by its shape, whatever they named things.

Two codes fall in one cluster when their syntax trees are equal once every variable,
argument and function name is replaced by its order of first appearance and every constant
by a placeholder (attribute and keyword names stay: ``.softmax(dim=...)`` is the approach).
A cluster of failing code whose checks named no specific cause is a candidate for a new
check.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from workbook.exercise import GENERIC_CAUSES

__all__ = ["UNPARSABLE", "cluster_rows", "normalised_code"]

UNPARSABLE = "(does not parse)"


def _shape(tree: ast.AST) -> str:
    """The tree as text, names numbered by first appearance, constants as ``C``.

    A hand-written walk rather than a ``NodeTransformer`` and ``ast.dump``: the first load
    of the Class page shapes every student's latest code, and this is about twice as fast.
    """
    names: dict[str, str] = {}
    parts: list[str] = []

    def name(text: str) -> str:
        return names.setdefault(text, f"n{len(names)}")

    def walk(node: ast.AST) -> None:
        if isinstance(node, ast.Name):
            parts.append(name(node.id))
            return
        if isinstance(node, (ast.Constant, ast.JoinedStr)):  # an f-string is constant text
            parts.append("C")
            return
        parts.append(type(node).__name__)
        if isinstance(node, ast.arg):
            parts.append(name(node.arg))
            return  # annotations say nothing about the approach
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            parts.append(name(node.name))
        elif isinstance(node, ast.Attribute):
            parts.append(node.attr)
        elif isinstance(node, ast.keyword):
            parts.append(str(node.arg))
        elif isinstance(node, ast.alias):
            parts.append(node.name)
        parts.append("(")
        for child in ast.iter_child_nodes(node):
            walk(child)
        parts.append(")")

    walk(tree)
    return " ".join(parts)


@functools.lru_cache(maxsize=20_000)  # a refresh sees mostly the same latest codes again
def normalised_code(code: str) -> str:
    """The abstracted syntax tree of ``code`` as text (``UNPARSABLE`` if it does not parse)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return UNPARSABLE
    return _shape(tree)


def cluster_rows(
    rows: Sequence[Mapping[str, Any]], titles: Mapping[str, str], *, with_code: bool
) -> list[dict[str, Any]]:
    """Per step, clusters of the students' latest runs, largest first.

    Returns:
        Rows ``step_id, step, cluster`` (a short id), ``size``, ``passing``, ``pass_rate``,
        ``causes`` (cause id -> students, failing members), ``no_specific_cause`` (failing
        members whose checks named no specific cause, the whole cluster failing) and
        ``representative`` (the shortest code in it; ``None`` without code).
    """
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["step_id"], normalised_code(row["code"])), []).append(row)
    out = []
    for (step, shape), members in groups.items():
        passing = sum(1 for m in members if m["passed"] == 1)
        causes: dict[str, int] = {}
        for m in members:
            if m["passed"] != 1:
                key = m["cause"] or "unclassified"
                causes[key] = causes.get(key, 0) + 1
        failing = len(members) - passing
        specific = sum(
            n for c, n in causes.items() if c != "unclassified" and c not in GENERIC_CAUSES
        )
        out.append(
            {
                "step_id": step,
                "step": titles.get(step, step),
                "cluster": hashlib.sha256(shape.encode()).hexdigest()[:8],
                "size": len(members),
                "passing": passing,
                "pass_rate": passing / len(members),
                "causes": dict(sorted(causes.items(), key=lambda kv: (-kv[1], kv[0]))),
                "no_specific_cause": failing > 0 and passing == 0 and specific == 0,
                "representative": min((m["code"] for m in members), key=lambda c: (len(c), c))
                if with_code
                else None,
            }
        )
    order = list(titles)
    out.sort(key=lambda r: (order.index(r["step_id"]), -r["size"], r["cluster"]))
    return out
