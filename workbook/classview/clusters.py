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


class _Abstract(ast.NodeTransformer):
    """Names become ``n0, n1, ...`` in order of first appearance; constants become ``0``."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def _name(self, name: str) -> str:
        return self.names.setdefault(name, f"n{len(self.names)}")

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return ast.copy_location(ast.Name(id=self._name(node.id), ctx=node.ctx), node)

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = self._name(node.arg)
        node.annotation = None
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.name = self._name(node.name)
        return self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        return ast.copy_location(ast.Constant(value=0), node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        return ast.copy_location(ast.Constant(value=0), node)  # an f-string is a constant text


@functools.lru_cache(maxsize=20_000)  # a refresh sees mostly the same latest codes again
def normalised_code(code: str) -> str:
    """The abstracted syntax tree of ``code`` as text (``UNPARSABLE`` if it does not parse)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return UNPARSABLE
    return ast.dump(_Abstract().visit(tree), annotate_fields=False)


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
