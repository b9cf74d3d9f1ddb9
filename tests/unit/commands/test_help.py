"""Help where a DVC user looks: xgov-digests retry --help, and make help pointing from
`dvc repro -j 10` (which DVC does not have) to `make -j 10 repro`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_retry_help_shows_help_and_touches_nothing(tmp_path: Path) -> None:
    command = Path(sys.executable).with_name("xgov-digests")
    result = subprocess.run(
        [command, "retry", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: xgov-digests retry") and "make retry" in result.stdout
    assert "not found" not in result.stdout + result.stderr and list(tmp_path.iterdir()) == []
    bad = subprocess.run(
        [command, "retry", "--bogus"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert bad.returncode == 2 and "unrecognized arguments: --bogus" in bad.stderr


VERBS = [
    "repro",
    "run",
    "retry",
    "shards",
    "set-params",
    "publish",
    "plots",
    "check-remote",
    "push",
    "pull",
    "fetch-publish",
    "worker",
    "collect",
    "r2",
]


def test_the_command_and_each_verb_show_help_and_touch_nothing(tmp_path: Path) -> None:
    command = Path(sys.executable).with_name("xgov-digests")
    out = subprocess.run([command, "--help"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert all(f"    {verb}" in out for verb in VERBS), out
    for verb in VERBS:
        result = subprocess.run([command, verb, "--help"], cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0 and result.stdout.startswith("usage: "), (verb, result.stdout, result.stderr)
        assert "error" not in result.stderr
    assert list(tmp_path.iterdir()) == []
    bad = subprocess.run([command, "repro", "--bogus"], cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 2 and "unrecognized arguments: --bogus" in bad.stderr


def test_make_help_names_make_j_as_dvc_repro_j() -> None:
    """make help points a DVC user from ``dvc repro -j 10`` (which DVC does not have) to ``make -j 10 repro``; that
    the README's commands run is tests/unit/test_docs.py's check, not a match of its words."""
    out = subprocess.run(
        ["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("make -j 10 repro"))
    assert "dvc repro -j 10" in line
