"""Shared helpers for the page tests: the real app under AppTest, on a fresh database."""

from __future__ import annotations

import json
import time
from pathlib import Path

from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.runtime.state.session_state import STREAMLIT_INTERNAL_KEY_PREFIX
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Widget

from db import Store
from workbook.exercise import content

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
STUDENT_PASSWORD = "long enough password"


def use_fresh_database(tmp_path: Path, monkeypatch) -> Path:
    """Point the app at a new database and kernel folder under ``tmp_path``."""
    path = tmp_path / "workbook.db"
    monkeypatch.setenv("WORKBOOK_DB", str(path))
    monkeypatch.setenv("WORKBOOK_WORK_DIR", str(tmp_path / "kernels"))
    monkeypatch.delenv("WORKBOOK_CATALOG", raising=False)
    # Page tests load the model and start kernels only when a test needs them: nothing in
    # the background (no reference model, no spare kernels).
    monkeypatch.setenv("WORKBOOK_PRELOAD", "0")
    return path


def open_store(path: Path) -> Store:
    """The store the app itself opens (the exercise's question and step ids)."""
    return Store(path, question_ids=content.question_ids(), step_ids=content.step_ids())


def open_app(user_id: int | None = None, page: str | None = None, timeout: float = 60) -> AppTest:
    """A fresh browser session of the real app, signed in as ``user_id``, on ``page``."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    if user_id is not None:
        at.session_state["auth:user_id"] = user_id
        at.session_state["auth:last_active"] = time.time()
    at.run()
    return at.switch_page(page).run() if page else at


class CodeCell(Widget):
    """The notebook's code editor (a components-v2 component) as AppTest sees it.

    AppTest has no driver for custom components: this stands in for the browser and sends
    exactly what ``static/code_editor.js`` sends, a saved text (state ``code``) or a run
    (trigger ``run`` carrying the text). Use :func:`code_cell` to get one.
    """

    def __init__(self, proto, root) -> None:
        super().__init__(proto, root)
        self.type = "code_cell"
        self._run_text: str | None = None

    @property
    def data(self) -> dict:
        """What the page passed to the editor (``code``, ``label``, ...)."""
        return json.loads(self.proto.mixed.json or self.proto.json)

    @property
    def value(self) -> str:
        """The text the page holds for this cell."""
        return self.data["code"]

    def input(self, text: str) -> CodeCell:
        """The student typed ``text`` and paused (a save)."""
        return self.set_value(text)

    def run_with(self, text: str) -> CodeCell:
        """The student pressed Shift+Enter with ``text`` in the cell."""
        self._run_text = text
        return self

    @property
    def _widget_state(self) -> WidgetState:
        state = WidgetState()
        state.id = self.id
        state.json_value = json.dumps({} if self._value is None else {"code": self._value})
        return state

    def trigger_state(self) -> WidgetState | None:
        if self._run_text is None:
            return None
        state = WidgetState()
        state.id = f"{STREAMLIT_INTERNAL_KEY_PREFIX}_{self.id}__events"
        state.json_trigger_value = json.dumps([{"event": "run", "value": self._run_text}])
        return state


def code_cell(at: AppTest, step_id: str) -> CodeCell:
    """The code editor of a notebook step in ``at`` (replaced in its element tree so that
    the next ``run()`` sends what was typed)."""
    for node in at._tree:
        if getattr(node, "type", None) != "bidi_component":
            continue
        if not node.proto.id.endswith(f"-{step_id}:code:editor"):
            continue
        cell = CodeCell(node.proto, at._tree)
        parent = _parent_of(at._tree, node)
        index = next(i for i, child in parent.children.items() if child is node)
        parent.children[index] = cell
        _patch_triggers(at)
        return cell
    raise LookupError(f"no code editor for {step_id}")


def _parent_of(block, node):
    for child in block.children.values():
        if child is node:
            return block
        if hasattr(child, "children"):
            found = _parent_of(child, node)
            if found is not None:
                return found
    return None


def _patch_triggers(at: AppTest) -> None:
    """Make the tree also send the code cells' run triggers (a browser sends both)."""
    tree = at._tree
    if getattr(tree, "_code_cell_patch", False):
        return
    plain = tree.get_widget_states

    def with_triggers():
        states = plain()
        for node in tree:
            if isinstance(node, CodeCell) and (trigger := node.trigger_state()) is not None:
                states.widgets.append(trigger)
        return states

    tree.get_widget_states = with_triggers
    tree._code_cell_patch = True
