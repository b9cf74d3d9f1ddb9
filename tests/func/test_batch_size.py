"""Changing the batch size the ways a DVC user does: ``make shards N=`` growing and shrinking, a hand edit of one
key (a clear message), and ``dvc exp run -S`` setting both keys."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import Workspace, write_feed

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parents[1]


def make_shards(ws: Workspace, n: int) -> str:
    shutil.copy2(ROOT / "Makefile", ws.path / "Makefile")
    result = ws.run(
        "make", "--no-print-directory", "-o", f"{VENV}/.installed", f"VENV={VENV}", "shards", f"N={n}", check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def digests(ws: Workspace) -> dict[str, bytes]:
    """owner/name -> digest bytes, wherever its shard is."""
    return {f"{p.parent.name}/{p.stem}": p.read_bytes() for p in (ws.path / "data/summaries").glob("shard-*/*/*.txt")}


@pytest.mark.timeout(1500)
def test_make_shards_grows_and_shrinks_and_dvc_repro_follows(workspace_factory, corpus, tmp_path: Path) -> None:
    _, entries = corpus
    ws = workspace_factory(str(write_feed(tmp_path / "feed.json", entries[:8])))
    ws.dvc("repro")
    ws.commit("10 shards")
    first = digests(ws)
    assert len(first) == 8

    out = make_shards(ws, 16)  # grows past the manifests fetch wrote
    assert "shards.batch_size 10 -> 16" in out and "next dvc repro runs: fetch, shard@0..15, aggregate" in out, out
    ran = ws.ran_stages(ws.dvc("repro").stdout)
    assert [s for s in ran if s.startswith("shard@")] == [f"shard@{k}" for k in range(16)]
    assert digests(ws) == first and len(json.loads((ws.path / "data/index.json").read_text())) == 8
    ws.commit("16 shards")

    out = make_shards(ws, 4)
    assert "fetch will remove shard@4..15" in out and "next dvc repro runs: fetch, shard@0..3, aggregate" in out, out
    out = make_shards(ws, 10)  # grows again before any repro
    assert "next dvc repro runs: fetch, shard@0..9, aggregate" in out, out
    ws.dvc("repro")
    assert ws.dvc("status").stdout.strip() == "Data and pipelines are up to date."
    assert digests(ws) == first
    assert sorted(p.name for p in (ws.path / "data/summaries").iterdir() if p.is_dir()) == [
        f"shard-{k}" for k in range(10)
    ]
    ws.commit("10 shards again")

    ws.set_params(shards={"batch_size": 3})  # one key edited by hand: fetch names the fix
    failed = ws.dvc("repro", check=False)
    assert failed.returncode != 0 and "run 'make shards N=3'" in failed.stdout + failed.stderr
    ws.run("git", "checkout", "--", "params.yaml")

    # plain DVC: an experiment sets both keys
    ws.dvc("exp", "run", "-n", "four", "-S", "shards.batch_size=4", "-S", "shards.offsets=[0,1,2,3]")
    assert sorted(p.name for p in (ws.path / "data/summaries").iterdir() if p.is_dir()) == [
        f"shard-{k}" for k in range(4)
    ]
    assert digests(ws) == first
    shown = json.loads(ws.dvc("exp", "show", "--json").stdout)
    names = [r.get("name") for rev in shown for e in (rev.get("experiments") or []) for r in e["revs"]]
    assert "four" in names
