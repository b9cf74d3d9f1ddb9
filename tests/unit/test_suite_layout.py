"""The tests' own layout, as DVC's: ``tests/unit/<wing>/`` holds the tests of one wing of ``xgov_digests/`` (or of
``stages/``), ``tests/func/`` the verbs end to end; every test folder is a package (two ``test_strategy.py`` in
different folders must not collide); and no test module imports another: helpers several files share live in
``tests/fixtures/``, shared fixtures in a conftest."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def wings(root: Path) -> set[str]:
    library = root / "xgov_digests"
    return {p.name for p in library.iterdir() if (p / "__init__.py").is_file()} | {"stages"}


def layout_problems(root: Path) -> list[str]:
    tests = root / "tests"
    problems = []
    for folder in sorted(p for p in (tests / "unit").iterdir() if p.is_dir() and p.name != "__pycache__"):
        if folder.name not in wings(root):
            problems.append(f"{folder.relative_to(root)}: no wing xgov_digests/{folder.name}/ (nor stages/)")
    for folder in sorted({p.parent for p in tests.rglob("test_*.py")}):
        if not (folder / "__init__.py").is_file():
            problems.append(f"{folder.relative_to(root)}: no __init__.py (its test modules' names could collide)")
    return problems


def cross_imports(root: Path) -> list[str]:
    """Imports of one test module by another (``tests.conftest`` and ``tests.fixtures`` are what they share)."""
    found = []
    for path in sorted((root / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                parts = name.split(".")
                if parts[0] == "tests" and len(parts) > 1 and parts[1] not in ("conftest", "fixtures"):
                    found.append(f"{path.relative_to(root)}:{node.lineno}: imports {name}")
    return found


def test_unit_folders_are_wings_and_every_test_folder_is_a_package() -> None:
    assert (ROOT / "tests" / "unit").is_dir() and (ROOT / "tests" / "func").is_dir()
    assert layout_problems(ROOT) == []


def test_test_modules_import_no_other_test_module() -> None:
    assert cross_imports(ROOT) == []


def test_the_layout_checks_can_fail(tmp_path: Path) -> None:
    (tmp_path / "xgov_digests" / "feed").mkdir(parents=True)
    (tmp_path / "xgov_digests" / "feed" / "__init__.py").write_text("")
    for folder in ("tests/unit/feed", "tests/unit/nowhere", "tests/func"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "test_x.py").write_text("import tests.unit.feed.test_x\n")
    (tmp_path / "tests/unit/feed/__init__.py").write_text("from tests.fixtures.sample import git\n")
    (tmp_path / "tests/func/test_y.py").write_text("from tests.unit.feed.test_x import helper\n")
    assert layout_problems(tmp_path) == [
        "tests/unit/nowhere: no wing xgov_digests/nowhere/ (nor stages/)",
        "tests/func: no __init__.py (its test modules' names could collide)",
        "tests/unit/nowhere: no __init__.py (its test modules' names could collide)",
    ]
    assert len(cross_imports(tmp_path)) == 4  # three ``import``, one ``from``; the fixtures import is allowed
