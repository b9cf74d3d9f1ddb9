"""The wrong interpreter, named: ``dvc.yaml``'s ``python`` is the first one on PATH, not the project's ``.venv``, so a
global or pipx ``dvc`` (or ``.venv/bin/dvc`` without the venv on PATH) may run a command with a python that lacks the
project's packages. With the hook installed (by ``stages/__init__.py``, which ``python -m stages.<name>`` imports before
the stage), a missing third-party module ends the command with one line naming the interpreter that ran, the module it
lacks and the fix, exit 2, instead of a traceback. Standard library only."""

from __future__ import annotations

import os
import sys
from pathlib import Path

_PACKAGES = {"ruamel": "ruamel.yaml", "yaml": "PyYAML", "dateutil": "python-dateutil"}  # module -> package to install
ROOT = Path(__file__).resolve().parents[2]


def running_command() -> str:
    """The dotted name of the module ``python -m`` runs (e.g. ``stages.fetch``)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        return spec.name.removesuffix(".__main__")
    return Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "python"


def missing_dependency_line(
    module: str, executable: str, prefix: str, root: Path = ROOT, command: str | None = None
) -> str:
    """The one line for ``module`` missing in the interpreter ``executable`` (its ``sys.prefix`` is ``prefix``)."""
    top = module.split(".")[0]
    package = _PACKAGES.get(top, top)
    ran = f"{executable} (Python {sys.version_info.major}.{sys.version_info.minor})"
    venv = root / ".venv"
    if Path(prefix).resolve() == venv.resolve():
        fix = "the project's .venv is incomplete: run 'make install' (or make repro, which installs it)"
    else:
        fix = (
            f"this is not the project's .venv: run 'make repro', or '. {venv.relative_to(root)}/bin/activate' "
            "first so that dvc's stages run with .venv/bin/python"
        )
    named = f"'{top}'" if package == top else f"'{top}' (package {package})"
    return f"{command or running_command()}: error: {ran} has no module {named}; {fix}"


def _excepthook(exc_type, exc, tb) -> None:  # noqa: ANN001 - sys.excepthook's signature
    name = getattr(exc, "name", None) or ""
    if issubclass(exc_type, ModuleNotFoundError) and name and name.split(".")[0] not in ("stages", "xgov_digests"):
        sys.stdout.flush()
        print(missing_dependency_line(name, sys.executable, sys.prefix), file=sys.stderr, flush=True)
        os._exit(2)  # exit 2 with nothing more: Python would add its own status 1 after the hook
    sys.__excepthook__(exc_type, exc, tb)


def install_hook() -> None:
    """Make a missing third-party module end the command in one line (see the module's docstring)."""
    sys.excepthook = _excepthook
