"""A digest-format upgrade under a real ``dvc repro``: every shard re-runs once the upgrade is committed with the
environment that has it, and a shard refuses an environment whose versions differ from the recorded ones."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.conftest import Workspace, write_feed
from tests.fixtures.sample import build_corpus

SHARDS = {"batch_size": 3, "offsets": [0, 1, 2], "assign": "index"}


def fake_install(folder: Path, name: str, version: str) -> dict[str, str]:
    """A distribution record ahead of site-packages: ``importlib.metadata`` reports ``version`` for ``name`` while
    the real package is still the one imported (an upgrade, as far as any version check can see)."""
    info = folder / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return {"PYTHONPATH": str(folder)}


def record_versions(ws: Workspace, **versions: str) -> None:
    """What the upgrade's commit does: the new versions in the workspace's copy of version.py."""
    path = ws.path / "xgov_digests/digest/version.py"
    text = path.read_text()
    for name, version in versions.items():
        text, n = re.subn(rf'^(    "{name}": )"[^"]*",$', rf'\1"{version}",', text, flags=re.M)
        assert n == 1, name
    path.write_text(text)


def shard_locks(ws: Workspace) -> dict[str, object]:
    stages = YAML(typ="safe").load((ws.path / "dvc.lock").read_text())["stages"]
    return {k: v for k, v in stages.items() if k.startswith("shard@")}


@pytest.mark.slow
def test_an_upgrade_re_runs_every_shard(tmp_path: Path, workspace_factory) -> None:
    feed = write_feed(tmp_path / "feed.json", build_corpus(tmp_path / "corpus", 6))
    ws = workspace_factory(str(feed))
    ws.set_params(shards=SHARDS)
    ws.dvc("repro")
    ws.commit("first run")
    before = shard_locks(ws)
    assert len(before) == 3

    # gitingest upgraded in the environment, version.py not updated: the recorded digests stay (they were made with
    # the recorded versions), and a shard that has to run refuses rather than mix formats; nothing is recorded
    upgraded = fake_install(tmp_path / "site", "gitingest", "99.0.0")
    out = ws.dvc("repro", "--force", "--single-item", "shard@1", check=False, env=upgraded)
    assert out.returncode != 0
    assert "gitingest 99.0.0 (recorded: 0.3.1)" in out.stdout + out.stderr
    assert shard_locks(ws) == before

    # version.py records the upgrade but the environment still has the old gitingest: refused as well
    record_versions(ws, gitingest="99.0.0")
    out = ws.dvc("repro", "--single-item", "shard@0", check=False)
    assert out.returncode != 0 and "gitingest 0.3.1 (recorded: 99.0.0)" in out.stdout + out.stderr

    # the upgrade committed with the environment that has it: DVC sees every shard changed and re-runs them all
    status = ws.dvc("status", "--json", env=upgraded).stdout
    assert all(f"shard@{k}" in status for k in SHARDS["offsets"])
    out = ws.dvc("repro", env=upgraded)
    ran = sorted(s for s in ws.ran_stages(out.stdout) if s.startswith("shard@"))
    assert ran == ["shard@0", "shard@1", "shard@2"], out.stdout
    after = shard_locks(ws)
    assert all(after[k] != before[k] for k in before)
    status = json.loads(ws.dvc("status", "--json", env=upgraded).stdout)
    assert not [k for k in status if k.startswith("shard@")], status


@pytest.mark.slow
def test_python_version_is_checked_by_the_running_interpreter(tmp_path: Path, workspace_factory) -> None:
    """The Python minor version is read from the interpreter the shard runs on, not from a file."""
    feed = write_feed(tmp_path / "feed.json", build_corpus(tmp_path / "corpus", 1))
    ws = workspace_factory(str(feed))
    other = "3.99" if sys.version_info[:2] != (3, 99) else "3.98"
    record_versions(ws, python=other)
    out = ws.python("-m", "stages.shard", "--batch-size", "10", "--offset", "0", "--feed", str(feed), check=False)
    assert out.returncode == 2 and f"recorded: {other}" in out.stderr
