"""The layout's rules: each stage in dvc.yaml depends on exactly the code it imports, and nothing more; the library
lives in wings that import only what their docstrings allow; no module reaches into another's private names;
``stages/`` holds exactly the commands dvc.yaml runs, and every documented command names a runnable module."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = ("stages", "xgov_digests")
LIBRARY = ROOT / "xgov_digests"


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
    """Project files imported by ``path``, at module level or inside functions (lazy imports count too), and the
    modules it names to a multiprocessing fork server's preload (which that server imports)."""
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "set_forkserver_preload"
            and node.args
            and isinstance(node.args[0], ast.List)
        ):
            names = [e.value for e in node.args[0].elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
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


def dvc_stages() -> dict[str, dict]:
    stages = YAML(typ="safe").load((ROOT / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}


def stage_module(stage: dict) -> str:
    return stage["cmd"].split("python -m ")[1].split()[0]


def test_each_stage_lists_exactly_the_code_it_imports() -> None:
    for name, stage in dvc_stages().items():
        module = stage_module(stage)
        entry = module_file(module)
        assert entry is not None, f"{name}: {module} is not a module of this project"
        # python -m a.b runs a/__init__.py before a/b.py: the packages above the stage's module are its code too
        parts = module.split(".")
        run = set().union(*(closure(f) for i in range(1, len(parts) + 1) if (f := module_file(".".join(parts[:i])))))
        wanted = {p for p in run if not docstring_only(p)}
        listed = code_deps(stage)
        rel = lambda paths: sorted(str(p.relative_to(ROOT)) for p in paths)  # noqa: E731
        assert rel(wanted - listed) == [], f"stage {name} imports code its deps do not list"
        assert rel(listed - run) == [], f"stage {name} lists code it never imports"


# ---- wings ---------------------------------------------------------------------------------------------------------


def code_files() -> list[Path]:
    return sorted(p for d in CODE_DIRS for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts)


def wings() -> list[str]:
    return sorted(p.parent.name for p in LIBRARY.glob("*/__init__.py"))


def wing_of(path: Path) -> str:
    """``stages`` for a stage, else the library wing a file lives in."""
    parts = path.relative_to(ROOT).parts
    return "stages" if parts[0] == "stages" else parts[1]


def allowed_imports(init: Path) -> set[str]:
    """The wings named in the docstring's sentence "It may import ...", e.g. "It may import ``core`` and
    ``digest``." (no names: no other wing)."""
    doc = ast.get_docstring(ast.parse(init.read_text())) or ""
    sentence = re.search(r"\bIt may import\b(.*?)\.(?:\s|$)", " ".join(doc.split()), re.S)
    assert sentence, f"{init.relative_to(ROOT)}: the docstring has no sentence 'It may import ...'"
    return set(re.findall(r"``(\w+)``", sentence[1]))


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for each project module ``path`` imports: ``from a.b import c`` counts as ``a.b.c`` when that
    is a module, else as ``a.b``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.append((node.lineno, sub if module_file(sub) is not None else node.module))
    return [(line, name) for line, name in out if name.split(".")[0] in CODE_DIRS]


def target_wing(module: str) -> str | None:
    """The wing of an imported module (None for a bare package: ``xgov_digests`` or ``stages`` itself)."""
    parts = module.split(".")
    if parts[0] == "stages":
        return "stages"
    return parts[1] if len(parts) > 1 else None


def test_the_library_lives_in_wings_whose_init_is_only_their_docstring() -> None:
    flat = sorted(p.name for p in LIBRARY.glob("*.py") if p.name != "__init__.py")
    assert flat == [], "modules flat in xgov_digests/: put each in the wing its job belongs to"
    for folder in sorted(p for p in LIBRARY.rglob("*") if p.is_dir() and p.name != "__pycache__"):
        if any(folder.glob("*.py")):
            assert (folder / "__init__.py").exists(), f"{folder.relative_to(ROOT)} has no __init__.py"
    nested = sorted(str(p.relative_to(ROOT)) for p in LIBRARY.glob("*/*/__init__.py"))
    assert nested == [], "a wing is one folder of modules"
    for wing in wings():
        init = LIBRARY / wing / "__init__.py"
        assert docstring_only(init), f"{init.relative_to(ROOT)}: only its docstring"
        assert allowed_imports(init) <= set(wings()), f"{wing}: its docstring allows a wing that does not exist"


def test_each_wing_imports_only_the_wings_its_docstring_allows() -> None:
    rules = {wing: allowed_imports(LIBRARY / wing / "__init__.py") for wing in wings()}
    rules["stages"] = allowed_imports(ROOT / "stages" / "__init__.py")
    offenders = []
    for path in code_files():
        own = wing_of(path)
        for line, module in imported_modules(path):
            target = target_wing(module)
            if target is None or target == own:
                continue
            if target not in rules[own]:
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {own} imports {module} ({target} is not allowed)")
    assert offenders == [], "imports the wings' docstrings do not allow:\n" + "\n".join(offenders)


def private_uses(path: Path) -> list[str]:
    """Where ``path`` uses a private name of a project module: ``from a.b import _x``, or ``m._x`` with ``m`` bound
    to a project module (``import a.b as m``, ``from a import b``, ``import a.b`` then ``a.b._x``), lazy imports too."""
    tree = ast.parse(path.read_text(), str(path))
    found, modules = [], {}  # modules: local name -> the project module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in CODE_DIRS:
                    modules[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] not in CODE_DIRS:
                continue
            for a in node.names:
                if a.name.startswith("_") and not a.name.startswith("__"):
                    found.append(f"{node.lineno}: from {node.module} import {a.name}")
                elif module_file(f"{node.module}.{a.name}") is not None:
                    modules[a.asname or a.name] = f"{node.module}.{a.name}"
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
            continue
        chain, value = [], node.value
        while isinstance(value, ast.Attribute):
            chain.append(value.attr)
            value = value.value
        if isinstance(value, ast.Name) and value.id in modules:
            dotted = ".".join([modules[value.id], *reversed(chain)])
            if module_file(dotted) is not None:
                found.append(f"{node.lineno}: {dotted}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names() -> None:
    """A helper that two modules use is a public function of the module that owns it."""
    offenders = [f"{path.relative_to(ROOT)}:{use}" for path in code_files() for use in private_uses(path)]
    assert offenders == [], "private names used across modules:\n" + "\n".join(offenders)


def test_private_name_check_catches_every_form(tmp_path: Path) -> None:
    some = next(p for p in code_files() if p.parent.name != "stages" and p.name != "__init__.py")
    module = ".".join(some.relative_to(ROOT).with_suffix("").parts)
    package, name = module.rsplit(".", 1)
    forms = {
        f"from {module} import _x": f"from {module} import _x",
        f"import {module} as m\nm._x()": f"{module}._x",
        f"from {package} import {name}\n{name}._x": f"{module}._x",
        f"import {module}\n{module}._x": f"{module}._x",
        f"def f():\n    from {module} import _x": f"from {module} import _x",
    }
    for text, expected in forms.items():
        (tmp_path / "probe.py").write_text(text + "\n")
        assert [u.split(": ", 1)[1] for u in private_uses(tmp_path / "probe.py")] == [expected], text
    allowed = (
        f"from gitingest.utils.file_utils import _decodes\nimport {module}\n{module}.__name__\n"
        "class A:\n    def f(self):\n        return self._x\n"
    )
    (tmp_path / "probe.py").write_text(allowed)
    assert private_uses(tmp_path / "probe.py") == []


def test_stages_holds_exactly_the_commands_dvc_yaml_runs() -> None:
    run = sorted({stage_module(stage) for stage in dvc_stages().values()})
    held = sorted(f"stages.{p.stem}" for p in (ROOT / "stages").glob("*.py") if p.name != "__init__.py")
    assert held == run, "stages/ is dvc.yaml's stages; other commands are verbs of xgov_digests/commands/"
    assert [p for p in (ROOT / "stages").iterdir() if p.is_dir() and p.name != "__pycache__"] == []


def documented_commands() -> dict[str, list[str]]:
    """Every ``python -m <project module>`` that the Makefile, the docs, the CI files, params.yaml and the code's
    own messages tell someone to run, and where."""
    sources = [
        ROOT / "Makefile",
        ROOT / "Dockerfile",
        ROOT / "params.yaml",
        ROOT / "dvc.yaml",
        *ROOT.glob("*.md"),
        *ROOT.glob("docs/*.md"),
        *ROOT.glob("bench/*.md"),
        *ROOT.glob(".github/workflows/*.yml"),
        *code_files(),
        *tracked_py("tests", "scripts", "bench"),
    ]
    found: dict[str, list[str]] = {}
    pattern = re.compile(r"""-m["',\s]+((?:stages|xgov_digests)(?:\.\w+)++)(?!\.<)""")
    for path in sources:
        if path.exists():
            for m in pattern.finditer(path.read_text()):
                found.setdefault(m[1], []).append(str(path.relative_to(ROOT)))
    return found


def test_every_documented_command_names_a_runnable_module() -> None:
    commands = documented_commands()
    assert "xgov_digests.operations.procgroup" in commands and "stages.shard" in commands  # the scan finds what it must
    bad = []
    for module, where in sorted(commands.items()):
        path = module_file(module)
        runnable = path is not None and path.name != "__init__.py" and "__main__" in path.read_text()
        if not runnable:
            bad.append(f"python -m {module} (in {', '.join(sorted(set(where)))}): no such command")
    assert bad == [], "\n".join(bad)
    runnable = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in LIBRARY.rglob("*.py")
        if 'if __name__ == "__main__"' in p.read_text()
    )
    undocumented = [name for name in runnable if name not in commands]
    assert undocumented == [], "library modules run as python -m that nothing runs: document them or remove them"


def test_the_verbs_are_the_one_entry_point() -> None:
    """Every verb is ``xgov-digests VERB``: commands/ holds one module per verb (plus ``main`` and ``common``), and no
    other module of the library parses a command line but the two that are not verbs: the process-group wrapper the
    tests and the bench run ``dvc`` under, and the maintainer's tool that
    regenerates the committed plots template."""
    from xgov_digests.commands.main import VERBS

    held = sorted(p.stem for p in (LIBRARY / "commands").glob("*.py") if p.stem not in ("__init__", "main", "common"))
    assert held == sorted(VERBS), "a module of commands/ that is not a verb, or a verb without its module"
    parsers = sorted(
        str(p.relative_to(ROOT))
        for p in LIBRARY.rglob("*.py")
        if "ArgumentParser(" in p.read_text() and p.parent.name != "commands"
    )
    tools = ["xgov_digests/operations/procgroup.py", "xgov_digests/results/plots_template.py"]
    assert parsers == tools, "a second entry point beside xgov-digests: make it a verb of commands/"


def tracked_py(*folders: str) -> list[Path]:
    """The Python files git tracks in ``folders``: what ``python -m bench`` generates (bench/work, ignored) holds .py
    files that are corpus data, not code."""
    pathspecs = [f"{folder}/*.py" for folder in folders]
    listed = subprocess.run(["git", "ls-files", *pathspecs], cwd=ROOT, capture_output=True, text=True, check=True)
    return sorted(ROOT / name for name in listed.stdout.split())


def test_scripts_and_bench_import_only_the_test_fixtures() -> None:
    """Demo, timing and bench code shares the tests' fixtures (``tests/fixtures/``), never a test module."""
    offenders = []
    listed = tracked_py("scripts", "bench")
    assert {ROOT / "bench/run.py", ROOT / "scripts/demo.py"} <= set(listed)  # the scan finds what it must
    for path in listed:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            )
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno}: {name}"
                for name in names
                if name.split(".")[0] == "tests" and not name.startswith("tests.fixtures")
            ]
    assert offenders == [], "import a fixture (move what is shared into tests/fixtures/):\n" + "\n".join(offenders)
