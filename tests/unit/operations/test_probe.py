"""collect's probe digests nothing: under its environment, the shard command of dvc.yaml, run by a shell as DVC runs
it, exits 3 naming the shard, and the stage's code is never reached (the stage knows nothing of the probe).
``tests/func/test_scaleout.py`` runs the probe through ``make collect`` against a real remote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from xgov_digests.operations.scaleout import probe_env

ROOT = Path(__file__).resolve().parents[3]


def shard_command(offset: int, batch_size: int = 4) -> str:
    """dvc.yaml's shard command for ``offset``, as DVC interpolates it."""
    cmd = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]["shard"]["do"]["cmd"]
    return cmd.replace("${shards.batch_size}", str(batch_size)).replace("${item}", str(offset))


def run_shard(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command as DVC runs it: through a shell, from the workspace (here an empty folder: no manifest)."""
    env = {**env, "PYTHONPATH": str(ROOT)}
    return subprocess.run(shard_command(3), shell=True, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_probe_runs_no_shard_code(tmp_path: Path) -> None:
    with probe_env() as env:
        done = run_shard(env, tmp_path)
    assert done.returncode == 3, done.stderr
    assert done.stderr == "shard@3: not in the remote's run-cache; not digested here (collect probe)\n"
    assert list(tmp_path.iterdir()) == []  # nothing written, no log


def test_the_probe_check_can_fail(tmp_path: Path) -> None:
    """Outside the probe, the same command runs the stage (which here finds no manifest: exit 2)."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])  # this interpreter
    done = run_shard({**os.environ, "PATH": path}, tmp_path)
    assert done.returncode == 2 and "collect probe" not in done.stderr, done.stderr
    assert "shard: error:" in done.stderr
