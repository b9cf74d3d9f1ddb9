"""The wrong interpreter: dvc.yaml's ``python`` is the first on PATH, so a global dvc (or ``.venv/bin/dvc`` without
the venv activated) may run the stages with a python that lacks the project's packages. It gets one line naming
that interpreter, the missing module and the fix, exit 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import VENV_BIN, write_feed
from xgov_digests.core.interpreter import missing_dependency_line

ROOT = Path(__file__).resolve().parents[3]
BARE_PYTHON = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture(scope="module")
def empty_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real venv with nothing installed: the python a user without the project's .venv has first on PATH."""
    venv = tmp_path_factory.mktemp("empty") / "venv"
    subprocess.run([str(BARE_PYTHON), "-m", "venv", "--without-pip", str(venv)], check=True)
    probe = subprocess.run([str(venv / "bin/python"), "-c", "import ruamel.yaml"], capture_output=True)
    assert probe.returncode != 0  # really lacks the deps
    return venv


def bare_env(venv: Path) -> dict[str, str]:
    path = [p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != Path(VENV_BIN)]
    return dict(os.environ, PATH=os.pathsep.join([str(venv / "bin"), *path]), DVC_NO_ANALYTICS="1")


@pytest.mark.parametrize("module", ["stages.fetch", "stages.shard", "stages.aggregate"])
def test_a_stage_without_its_packages_says_so_in_one_line(empty_venv: Path, module: str) -> None:
    result = subprocess.run(
        ["python", "-m", module, "--batch-size", "10", "--offset", "0"],
        cwd=ROOT,
        env=bare_env(empty_venv),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    line = lines[0]
    assert line.startswith(f"{module}: error: {empty_venv}/bin/python (Python 3.")
    assert "has no module '" in line and "make repro" in line and ". .venv/bin/activate" in line
    assert result.stdout == ""


def test_plain_dvc_repro_with_the_wrong_python_first_on_path(empty_venv: Path, workspace_factory, tmp_path) -> None:
    ws = workspace_factory(str(write_feed(tmp_path / "feed.json", [])))
    result = subprocess.run(
        [f"{VENV_BIN}/dvc", "repro"], cwd=ws.path, env=bare_env(empty_venv), capture_output=True, text=True, timeout=300
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"stages.fetch: error: {empty_venv}/bin/python" in out and "has no module '" in out, out
    assert "Traceback" not in out and "exited with 2" in out, out
    assert not (ws.path / "data/repos.json").exists()


def test_the_line_for_an_incomplete_project_venv_says_make_install(tmp_path: Path) -> None:
    line = missing_dependency_line("ruamel.yaml", str(tmp_path / ".venv/bin/python"), str(tmp_path / ".venv"), tmp_path)
    assert "has no module 'ruamel' (package ruamel.yaml)" in line and "make install" in line
    other = missing_dependency_line("pandas", "/usr/bin/python3", "/usr", tmp_path)
    assert "has no module 'pandas';" in other and "make repro" in other and ". .venv/bin/activate" in other
