"""The layout's rules: each stage in dvc.yaml depends on exactly the code it imports, and nothing more."""

from __future__ import annotations

import ast
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
CODE_DIRS = ("stages", "xgov_digests")


def module_file(name: str) -> Path | None:
    """The project file of a dotted module name (a package's ``__init__.py``), or None for other modules."""
    if name.split(".")[0] not in CODE_DIRS:
        return None
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def imports(path: Path) -> set[Path]:
    """Project files imported by ``path``, at module level or inside functions (lazy imports count too)."""
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__ and a/b/c
                if (f := module_file(".".join(parts[:i]))) is not None:
                    found.add(f)
    return found


def closure(start: Path) -> set[Path]:
    seen, todo = set(), [start]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(imports(path))
    return seen


def docstring_only(path: Path) -> bool:
    """A package ``__init__.py`` that holds nothing but its docstring cannot change a stage's output."""
    body = ast.parse(path.read_text()).body
    only_docstring = all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)
    return path.name == "__init__.py" and only_docstring


def code_deps(stage: dict) -> set[Path]:
    """The code files a stage lists (a folder dep stands for every .py file under it)."""
    out: set[Path] = set()
    for dep in stage.get("deps", []):
        path = ROOT / dep
        if dep.split("/")[0] in CODE_DIRS:
            out |= set(path.rglob("*.py")) if path.is_dir() else {path}
    return out


def test_each_stage_lists_exactly_the_code_it_imports() -> None:
    stages = YAML(typ="safe").load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        stage = stage.get("do", stage)
        module = stage["cmd"].split("python -m ")[1].split()[0]
        entry = module_file(module)
        assert entry is not None, f"{name}: {module} is not a module of this project"
        wanted = {p for p in closure(entry) if not docstring_only(p)}
        listed = code_deps(stage)
        rel = lambda paths: sorted(str(p.relative_to(ROOT)) for p in paths)  # noqa: E731
        assert rel(wanted - listed) == [], f"stage {name} imports code its deps do not list"
        assert rel(listed - closure(entry)) == [], f"stage {name} lists code it never imports"
