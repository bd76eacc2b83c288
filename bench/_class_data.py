"""A generated class with a known history, written through the store, for the class view.

Used by ``bench/class.py`` (300 students x 60 runs against 30) and by
``tests/test_classview.py``, which recomputes every figure in plain Python from the
``RunRecord`` list returned here. Each student works through steps 1-6 in order with their
own skill; a failing run names a cause from the step's pool (sometimes none: a run stored
before cause ids, "unclassified"), some cells raise (no check), some edits are autosaved
without a run, and a few students fail again after a pass. Code comes in *families* (one
per step and verdict or cause) written with random names and constants, so the syntax-tree
clusters are known in advance.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from db import Store

STEPS = ("step1", "step2", "step3", "step4", "step5", "step6")
CAUSE_POOL = {
    "step1": ("attention_mask_as_ids", "whole_encoding", "wrong_value"),
    "step2": ("tracks_gradients", "stale_phrase", "shape_not_printed"),
    "step3": ("softmax_too_early", "wrong_position", "batch_dimension_kept"),
    "step4": ("softmax_twice", "percentage_not_fraction", "wrong_value"),
    "step5": ("wrong_order", "raw_vocab_entry"),
    "step6": ("reads_globals", "ignores_k", "too_few_comments"),
}
# One attribute per family: attribute names survive the clusters' normalisation.
_ATTRS = ("softmax", "argmax", "topk", "decode", "logits", "view", "item", "squeeze")
_NAMES = ("x", "y", "z", "a", "b", "ids", "out", "probs", "scores", "tok", "res", "val")


@dataclass(frozen=True)
class RunRecord:
    """One revision written: a run (``ran``) or a code-only autosave."""

    user_id: int
    step_id: str
    ran: bool
    passed: bool | None
    cause: str | None
    family: str
    at: datetime


FAMILIES = [
    f"{step}-{kind}"
    for step in STEPS
    for kind in ("ok", "draft", "error", "unclassified", *CAUSE_POOL[step])
]


def family_code(family: str, rng: random.Random) -> str:
    """Code of a family: the same syntax tree up to names and constants, text varying.

    Each family has its own pair of attributes (its index in base ``len(_ATTRS)``), so two
    families never share a tree.
    """
    first, second = divmod(FAMILIES.index(family), len(_ATTRS))
    a, b, c = rng.sample(_NAMES, 3)
    k = rng.randint(0, 9)
    return (
        f"# {rng.choice(('try', 'again', 'hmm'))}\n{a} = {b}.{_ATTRS[first]}({c}, {k})\n"
        f"{c} = {a}.{_ATTRS[second]}()  # {family}\n"
    )


@contextmanager
def frozen_clock(start: datetime) -> Iterator[list[datetime]]:
    """Make the store stamp revisions with ``clock[0]`` (the caller moves it forward)."""
    import db.work

    clock = [start]
    real = db.work._now
    db.work._now = lambda: clock[0]
    try:
        yield clock
    finally:
        db.work._now = real


def generate_class(
    store: Store,
    students: int,
    runs_per_student: int,
    *,
    seed: int = 7,
    now: datetime | None = None,
    minutes: float = 90,
) -> tuple[list[int], list[RunRecord]]:
    """Create ``students`` students and about ``runs_per_student`` runs each, ending at ``now``.

    Returns:
        The students' ids and every revision written, in the order written.
    """
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    start = now - timedelta(minutes=minutes)
    ids = [
        store.create_user(f"gen{seed}-{i}@example.org", f"Gen Student {i:03d}", "password-1").id
        for i in range(students)
    ]
    plans = {uid: _plan(rng, runs_per_student) for uid in ids}
    # Interleave students as a lab session does: everyone's i-th action at about the same time.
    timeline = []
    for uid, plan in plans.items():
        offsets = sorted(rng.uniform(0, minutes * 60) for _ in plan)
        timeline += [(offset, uid, action) for offset, action in zip(offsets, plan, strict=True)]
    timeline.sort(key=lambda item: (item[0], item[1]))
    records: list[RunRecord] = []
    with frozen_clock(start) as clock:
        for offset, uid, (step, ran, passed, cause, family) in timeline:
            clock[0] = start + timedelta(seconds=offset)
            code = family_code(family, rng)
            if ran:
                store.save_cell(
                    uid,
                    step,
                    code=code,
                    outputs=[],
                    execution_count=1,
                    passed=passed,
                    message=None if passed is None else ("ok" if passed else f"Not yet: {cause}"),
                    cause=cause,
                )
            else:
                store.save_cell(uid, step, code=code)
            records.append(RunRecord(uid, step, ran, passed, cause, family, clock[0]))
    return ids, records


def _plan(rng: random.Random, runs: int) -> list[tuple[str, bool, bool | None, str | None, str]]:
    """One student's actions in order: (step, ran, passed, cause, code family)."""
    skill = rng.uniform(0.15, 0.7)  # chance that a run passes
    actions = []
    step_index = 0
    while len(actions) < runs and step_index < len(STEPS):
        step = STEPS[step_index]
        roll = rng.random()
        if roll < 0.07:
            actions.append((step, False, None, None, f"{step}-draft"))  # autosave only
            continue
        if roll < 0.12:
            actions.append((step, True, None, None, f"{step}-error"))  # raised: no check
            continue
        if rng.random() < skill:
            actions.append((step, True, True, None, f"{step}-ok"))
            if rng.random() < 0.1:  # a regression: edits after the pass break it again
                cause = rng.choice(CAUSE_POOL[step])
                actions.append((step, True, False, cause, f"{step}-{cause}"))
                continue
            step_index += 1
            continue
        cause = None if rng.random() < 0.08 else rng.choice(CAUSE_POOL[step])
        actions.append((step, True, False, cause, f"{step}-{cause or 'unclassified'}"))
    while len(actions) < runs:  # done: Run all above now and then, every step passing
        step = rng.choice(STEPS)
        actions.append((step, True, True, None, f"{step}-ok"))
    return actions
