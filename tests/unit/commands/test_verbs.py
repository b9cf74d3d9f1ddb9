"""The installed command's verbs check before they write: a bad value leaves ``params.yaml`` byte for byte as it was,
a change and its undo leave no diff, an unknown section is named like an unknown key, and every error is one line
with its exit code. Fast: no ``dvc`` process."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from xgov_digests.core.params import ParamsError, load_params, update_params

ROOT = Path(__file__).resolve().parents[3]
COMMAND = Path(sys.executable).with_name("xgov-digests")


def xgov(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([COMMAND, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy2(ROOT / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


@pytest.mark.parametrize("limit", ["abc", "-1", "1.5", ""])
def test_run_with_a_bad_limit_fails_before_it_writes(project: Path, limit: str) -> None:
    before = (project / "params.yaml").read_bytes()
    result = xgov(project, "run", "--limit", limit)
    assert result.returncode == 2 and "LIMIT must be a whole number >= 0" in result.stderr, result.stderr
    assert (project / "params.yaml").read_bytes() == before
    assert sorted(p.name for p in project.iterdir()) == ["params.yaml"]  # nothing else written either


def test_shards_there_and_back_leaves_no_diff(project: Path) -> None:
    before = (project / "params.yaml").read_bytes()
    for n in ("20", "3", "10"):
        result = xgov(project, "shards", n)
        assert result.returncode == 0, result.stderr
        assert load_params(project / "params.yaml").shards.offsets == tuple(range(int(n)))
        if n == "20":
            line = next(ln for ln in (project / "params.yaml").read_text().splitlines() if "offsets:" in ln)
            assert "19]  # must be exactly" in line  # the comment keeps its two spaces after the list
    assert (project / "params.yaml").read_bytes() == before


def test_the_comparison_can_fail(project: Path) -> None:
    """The byte comparison above sees a one-space change."""
    before = (project / "params.yaml").read_bytes()
    text = before.decode().replace("]  # must be exactly", "]   # must be exactly")
    assert text.encode() != before


@pytest.mark.parametrize("bad", ["0", "-3", "x", ""])
def test_shards_with_a_bad_n_changes_nothing(project: Path, bad: str) -> None:
    before = (project / "params.yaml").read_bytes()
    result = xgov(project, "shards", *([bad] if bad else []))
    assert result.returncode == 2, result.stderr
    assert ("expected a whole number >= 1" in result.stderr) or ("set N=<number of shards>" in result.stderr)
    assert len(result.stderr.strip().splitlines()) <= 2  # argparse's usage line and one error line
    assert (project / "params.yaml").read_bytes() == before


@pytest.mark.parametrize(("section", "body"), [("publsh", "  prefix: x\n"), ("ingst", "  brand_new_key: 1\n")])
def test_an_unknown_section_is_named_like_an_unknown_key(project: Path, section: str, body: str) -> None:
    path = project / "params.yaml"
    path.write_text(path.read_text() + f"\n{section}:\n{body}")
    with pytest.raises(ParamsError, match=rf"unknown section\(s\) {section}; known sections are feed, ingest"):
        load_params(path)


def test_update_params_refuses_what_load_params_would_refuse(project: Path) -> None:
    path = project / "params.yaml"
    before = path.read_bytes()
    for overrides in ({"feed": {"limit": "abc"}}, {"feed": {"limit": -1}}, {"shards": {"batch_size": 0}}):
        with pytest.raises(ParamsError):
            update_params(path, overrides)
        assert path.read_bytes() == before, overrides


def test_an_error_is_one_line_with_its_exit_code(tmp_path: Path) -> None:
    result = xgov(tmp_path, "retry")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "xgov-digests retry: error: data/stats.parquet not found: run 'xgov-digests repro' (or dvc repro) first"
    ]
    result = xgov(tmp_path, "repro")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("xgov-digests repro: error: params.yaml not found")


def test_worker_names_bad_offsets_before_running_anything(project: Path) -> None:
    for bad in ("-1", "12", "x"):
        result = xgov(project, "worker", "--", bad)
        assert result.returncode == 2 and "not in shards.offsets" in result.stderr, result.stderr
        assert result.stdout == ""
    result = xgov(project, "worker")
    assert result.returncode == 2 and "set OFFSET=K" in result.stderr
