"""The dependency rules of the design, checked by walking every module's imports.

pages -> workbook -> (lm_engine, db); only app.py and pages/ import streamlit;
lm_engine and db never import each other or workbook. Inside workbook/, each concept is a
subpackage with a stated public face (``__all__``), and the pages use only that face and the
service facade; no workbook module grows past what a reader can hold in mind.
"""

from __future__ import annotations

import ast
import functools
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lm_engine", "db", "workbook", "pages")

FORBIDDEN = {
    "lm_engine": {"db", "workbook", "pages", "streamlit"},
    "db": {"lm_engine", "workbook", "pages", "streamlit"},
    "workbook": {"pages", "streamlit"},
}


def imported_top_level_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_every_package_exists_with_python_files():
    for package in PACKAGES:
        assert python_files(package), f"{package}/ has no Python files"


def test_layers_only_import_downwards():
    violations = []
    for package, forbidden in FORBIDDEN.items():
        for path in python_files(package):
            bad = imported_top_level_names(path) & forbidden
            if bad:
                violations.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not violations, "layering broken:\n" + "\n".join(violations)


def test_only_app_and_pages_import_streamlit():
    offenders = [
        str(path.relative_to(ROOT))
        for path in ROOT.rglob("*.py")
        if ".venv" not in path.parts
        and path.parts[len(ROOT.parts)] not in {"pages", "tests", "bench"}
        and path.relative_to(ROOT).as_posix() not in {"app.py", "serve.py"}
        and "streamlit" in imported_top_level_names(path)
    ]
    assert not offenders, f"only app.py, serve.py and pages/ may import streamlit: {offenders}"


def test_every_package_declares_its_public_api():
    for package in ("lm_engine", "db", "workbook"):
        init = ROOT / package / "__init__.py"
        tree = ast.parse(init.read_text(encoding="utf-8"))
        assigned = set()
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            if isinstance(node, ast.AnnAssign):
                targets = [node.target]
            assigned.update(t.id for t in targets if isinstance(t, ast.Name))
        assert "__all__" in assigned, f"{package}/__init__.py must define __all__"


# --- workbook/'s concepts and what the pages may see of them ------------------------------

WORKBOOK = ROOT / "workbook"
# A concept is a subpackage of workbook/, or a concept that fits one module.
SINGLE_MODULE_CONCEPTS = {"explore", "quality"}
MAX_MODULE_LINES = 450
# The files that make up the user interface: they see workbook/ only from the outside.
UI_FILES = ("app.py", "serve.py", "pages")


def public_names(module: str) -> set[str]:
    """The names a workbook module or concept offers in ``__all__`` (importing it is cheap:
    a concept's modules load only when one of its names is used)."""
    return set(importlib.import_module(module).__all__)


def concepts() -> list[str]:
    """The names of workbook's concepts: its subpackages, and the one-module concepts."""
    folders = [f.name for f in sorted(WORKBOOK.iterdir()) if (f / "__init__.py").is_file()]
    return folders + sorted(SINGLE_MODULE_CONCEPTS)


def ui_files() -> list[Path]:
    files: list[Path] = []
    for name in UI_FILES:
        path = ROOT / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


@functools.cache
def concept_faces() -> dict[str, set[str]]:
    """Each concept's public names."""
    return {name: public_names(f"workbook.{name}") for name in concepts()}


def workbook_uses(path: Path) -> list[str]:
    """What one UI file takes from workbook/ that it should not: a list of plain sentences."""
    faces = concept_faces()
    package_face = public_names("workbook")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    problems: list[str] = []
    bound: dict[str, str] = {}  # a local name -> the concept it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            problems += [
                f"`import {alias.name}` (import names from workbook or a concept instead)"
                for alias in node.names
                if alias.name.split(".")[0] == "workbook"
            ]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "workbook":
                continue
            if node.module == "workbook":
                for alias in node.names:
                    if alias.name in faces:
                        bound[alias.asname or alias.name] = alias.name
                    elif alias.name not in package_face:
                        problems.append(f"`{alias.name}` from workbook (not in its __all__)")
            elif len(parts) == 2 and parts[1] in faces:
                problems += [
                    f"`{alias.name}` from {node.module} (not in its __all__)"
                    for alias in node.names
                    if alias.name not in faces[parts[1]]
                ]
            else:
                problems.append(f"`from {node.module} import ...` (a module inside a concept)")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
            and node.attr not in faces[bound[node.value.id]]
        ):
            problems.append(f"`{node.value.id}.{node.attr}` (not in the concept's __all__)")
    return problems


def test_pages_use_only_the_facade_and_the_public_names_of_concepts():
    offenders = [
        f"{path.relative_to(ROOT)}: {problem}"
        for path in ui_files()
        for problem in workbook_uses(path)
    ]
    assert not offenders, "pages reach into workbook internals:\n" + "\n".join(offenders)


def test_the_rule_catches_a_page_reaching_into_a_module(tmp_path):
    page = tmp_path / "page.py"
    page.write_text(
        "import workbook.kernels\n"
        "from workbook.kernels.pool import Anything\n"
        "from workbook import review, service\n"
        "from workbook.review import not_a_public_name\n"
        "review._private_helper()\n",
        encoding="utf-8",
    )
    problems = workbook_uses(page)
    assert len(problems) == 5, problems
    assert workbook_uses(ROOT / "pages" / "submit.py") == []


def test_every_concept_says_what_it_owns_and_everything_it_exports_exists():
    for name in concepts():
        module = importlib.import_module(f"workbook.{name}")
        assert (module.__doc__ or "").strip(), f"workbook/{name} has no docstring"
        names = public_names(f"workbook.{name}")
        assert names, f"workbook.{name} must define __all__"
        missing = [n for n in sorted(names) if not hasattr(module, n)]
        assert not missing, f"workbook.{name}.__all__ names what it lacks: {missing}"


def test_no_workbook_module_is_longer_than_a_reader_can_hold_in_mind():
    long = {
        str(path.relative_to(ROOT)): lines
        for path in WORKBOOK.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"workbook modules over {MAX_MODULE_LINES} lines: {long}"


def test_a_concept_loads_its_modules_only_when_a_name_is_used():
    code = (
        "import sys, workbook, workbook.exercise, workbook.kernels, workbook.submission\n"
        "heavy = ('torch', 'zmq', 'jupyter_client', 'nbformat', 'websockets')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "workbook.submission.build_bundle\n"
        "print('nbformat' in sys.modules, 'torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines() == ["[]", "True False"]


def test_a_concept_answers_an_unknown_name_as_a_module_does():
    import workbook.review

    assert "roster_records" in dir(workbook.review)
    with pytest.raises(AttributeError, match="has no attribute 'roster_record'"):
        _ = workbook.review.roster_record


def test_no_public_name_of_a_concept_is_also_one_of_its_modules():
    # Importing a submodule sets it as an attribute of its package, and would then hide
    # a public name spelled the same (``exercise.steps`` the function vs a steps.py).
    clashes = [
        f"workbook.{name}.{public}"
        for name in concepts()
        if (WORKBOOK / name).is_dir()
        for public in public_names(f"workbook.{name}")
        if (WORKBOOK / name / f"{public}.py").exists() or (WORKBOOK / name / public).is_dir()
    ]
    assert not clashes, f"public names that are also module names: {clashes}"


def concept_imports() -> dict[str, set[str]]:
    """Which of workbook's top-level units (a subpackage or a module) each one imports."""
    units = {
        p.name if p.is_dir() else p.stem for p in WORKBOOK.iterdir() if p.name != "__pycache__"
    }
    graph: dict[str, set[str]] = {}
    for path in WORKBOOK.rglob("*.py"):
        where = path.relative_to(WORKBOOK).parts
        unit = where[0] if len(where) > 1 else path.stem
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                parts = node.module.split(".")
                if parts[0] == "workbook":
                    names = parts[1:2] or [alias.name for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name.split(".")[1] for a in node.names if a.name.startswith("workbook.")]
            graph.setdefault(unit, set()).update(n for n in names if n in units and n != unit)
    return graph


def test_concepts_import_each_other_in_one_direction():
    graph = concept_imports()
    assert "kernels" in graph["service"] and "exercise" in graph["review"]  # the walk sees imports

    def cycle_from(unit: str, path: tuple[str, ...]) -> tuple[str, ...] | None:
        for used in sorted(graph.get(unit, ())):
            if used in path:
                return (*path[path.index(used) :], used)
            found = cycle_from(used, (*path, used))
            if found:
                return found
        return None

    cycles = {c for unit in graph if (c := cycle_from(unit, (unit,)))}
    assert not cycles, "workbook's concepts import each other in a circle: " + "; ".join(
        " -> ".join(c) for c in sorted(cycles)
    )
