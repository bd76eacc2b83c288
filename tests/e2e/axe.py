"""The accessibility audit of the browser tests: axe-core's own engine, run in the page.

axe-core comes bundled in the pinned ``axe-playwright-python`` package (its ``axe.min.js``);
we inject that file into the page and call ``axe.run`` with the WCAG 2.1 A and AA tags. No
rule is written or changed here: what fails is what axe-core says fails.

``audit(page, label)`` is what a test calls at each page and state it wants audited. It fails
on every *serious* or *critical* violation with a readable list (rule, impact, help, and the
first few elements with axe's own summary of what to fix); minor and moderate findings are
kept in ``RESULTS`` for the report, not failed on.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from axe_playwright_python.base import AXE_SCRIPT
from playwright.sync_api import Page

# WCAG 2.0 and 2.1, levels A and AA: what the accessibility statement claims.
TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
FAILING_IMPACTS = ("serious", "critical")
NODES_SHOWN = 5


@dataclass
class Audit:
    """What axe found on one page or state.

    Attributes:
        label: the page and state, as the test named it.
        violations: axe's violation objects (id, impact, help, nodes, ...).
    """

    label: str
    violations: list[dict] = field(default_factory=list)

    @property
    def failing(self) -> list[dict]:
        """The serious and critical violations."""
        return [v for v in self.violations if v.get("impact") in FAILING_IMPACTS]

    def counts(self) -> Counter:
        """Elements per rule id (all impacts)."""
        return Counter({v["id"]: len(v["nodes"]) for v in self.violations})


# Every audit of this test process, in order (a summary for reports and docs).
RESULTS: list[Audit] = []


def axe_version(page: Page) -> str:
    """The version of the axe-core engine injected into ``page``."""
    _inject(page)
    return page.evaluate("() => axe.version")


def _inject(page: Page) -> None:
    # Once per document: a Streamlit rerun keeps the document, a navigation does not.
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_SCRIPT)


def run_axe(page: Page, label: str) -> Audit:
    """Run axe-core on the whole page with the WCAG 2.1 A/AA tags; record and return it."""
    _inject(page)
    options = {"runOnly": {"type": "tag", "values": list(TAGS)}, "resultTypes": ["violations"]}
    result = page.evaluate(f"() => axe.run(document, {json.dumps(options)})")
    audit = Audit(label, result["violations"])
    RESULTS.append(audit)
    return audit


def describe(audit: Audit, violations: list[dict] | None = None) -> str:
    """A readable list of violations: one block per rule, its first elements below it."""
    violations = audit.failing if violations is None else violations
    lines = [f"{audit.label}: {len(violations)} axe violation(s)"]
    for v in violations:
        lines.append(f"- {v['id']} ({v['impact']}, {len(v['nodes'])} element(s)): {v['help']}")
        for node in v["nodes"][:NODES_SHOWN]:
            target = " > ".join(str(t) for t in node["target"])
            summary = (node.get("failureSummary") or "").replace("\n", " ").strip()
            lines.append(f"    {target}: {node['html'][:160]}")
            if summary:
                lines.append(f"      {summary[:300]}")
        if len(v["nodes"]) > NODES_SHOWN:
            lines.append(f"    ... and {len(v['nodes']) - NODES_SHOWN} more")
    return "\n".join(lines)


def audit(page: Page, label: str) -> Audit:
    """Audit the page as it is now; fail on any serious or critical WCAG 2.1 A/AA violation.

    Args:
        page: a Playwright page, settled in the state to audit (no rerun in progress).
        label: names the page and state in the failure message, e.g. ``"notebook: running"``.

    Returns:
        The audit (also appended to ``RESULTS``), for callers that look at minor findings.
    """
    result = run_axe(page, label)
    assert not result.failing, describe(result)
    return result


def summary(audits: list[Audit] | None = None) -> str:
    """Elements per rule and impact over audits (default: all of this process), one a line."""
    totals: Counter = Counter()
    pages: Counter = Counter()
    for one in RESULTS if audits is None else audits:
        for v in one.violations:
            totals[(v["id"], v["impact"])] += len(v["nodes"])
            pages[(v["id"], v["impact"])] += 1
    if not totals:
        return "no violations"
    return "\n".join(
        f"{rule} ({impact}): {count} element(s) on {pages[(rule, impact)]} page state(s)"
        for (rule, impact), count in sorted(totals.items())
    )
