"""The dependency rules of the design, checked by walking every module's imports.

pages -> workbook -> (lm_engine, db); only app.py and pages/ import streamlit;
lm_engine and db never import each other or workbook.
"""

from __future__ import annotations

import ast
from pathlib import Path

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
