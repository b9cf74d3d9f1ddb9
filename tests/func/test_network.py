"""Network faults on a real git smart-HTTP server on 127.0.0.1: hangs, 404, auth, resets mid-pack."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from tests.conftest import write_feed
from tests.fixtures.faulty_git import publish_bare, serve_git
from tests.fixtures.sample import make_repo


def feed_entry(owner: str, name: str) -> dict:
    return {
        "owner": owner,
        "name": name,
        "url": f"https://github.com/{owner}/{name}",
        "pushedAt": "2024-01-01T00:00:00Z",
    }


def git_processes_for(port: str, tmp: Path) -> list[str]:
    """git processes of this test: talking to its server's port, or cloning into its TMPDIR (other tests, on other
    pytest-xdist workers, clone at the same time)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "git" in cmd and (port in cmd or f"{tmp}/xgov-clone-" in cmd):
            found.append(cmd)
    return found


@pytest.mark.slow
def test_git_faults(workspace_factory, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_repo(src, {"README.md": "served over smart HTTP\n", "a/b.py": "x = 1\n"})
    root = tmp_path / "srv"
    for owner in ("good", "reset", "flaky", "broken"):
        publish_bare(src, root, owner, "repo")
    names = ["good", "hang", "missing", "private", "reset", "flaky", "broken"]
    feed = write_feed(tmp_path / "feed.json", [feed_entry(owner, "repo") for owner in names])
    with serve_git(root) as server:
        tmp = tmp_path / "tmp"
        tmp.mkdir()
        ws = workspace_factory(str(feed), extra_env={**server.insteadof_env(), "TMPDIR": str(tmp)})
        ws.set_params(
            ingest={"clone_timeout": 3, "retries": 2, "max_failure_ratio": 1.0, "workers": 7},
            shards={"batch_size": 1, "offsets": [0]},
        )
        start = time.monotonic()
        ws.python("-m", "stages.fetch")
        ws.python("-m", "stages.shard", "--batch-size", "1", "--offset", "0")
        elapsed = time.monotonic() - start
        rows = pd.read_parquet(ws.path / "data/stats/shard-0.parquet").set_index("owner")
        port = server.base.rsplit(":", 1)[1]
        assert git_processes_for(port, tmp) == []  # the hung clone's whole process group was killed

    assert rows.loc["good", "status"] == "ok"
    assert rows.loc["hang", "status"] == "failed" and "timed out after 3s" in rows.loc["hang", "error"]
    assert rows.loc["missing", "status"] == "failed" and "not found" in rows.loc["missing", "error"]
    assert rows.loc["private", "status"] == "failed"
    assert "Authentication failed" in rows.loc["private", "error"]
    for name in ("missing", "private"):  # not retried (no "after N attempts"), no prompt (the 3 s kill)
        assert "attempts" not in rows.loc[name, "error"] and rows.loc[name, "total_s"] < 3, rows.loc[name].to_dict()
    assert rows.loc["reset", "status"] == "failed" and "after 3 attempts" in rows.loc["reset", "error"]
    assert rows.loc["flaky", "status"] == "ok"  # two resets, then the third attempt succeeds
    # flaky: three clone attempts, then the partial checkout's one batch of blobs (ingest.clone_filter: auto)
    assert server.packs["flaky/repo"] == 4 and server.packs["reset/repo"] == 3
    assert rows.loc["broken", "status"] == "failed" and "after 3 attempts" in rows.loc["broken", "error"]
    assert server.packs["broken/repo"] == 3  # an incomplete pack may be a passing fault: retried, then a result
    kinds = rows.loc[rows["status"] == "failed", "failure_kind"].to_dict()
    # no complete answer: transient; an answer that is an error (404, auth, a broken pack): permanent
    assert kinds == {
        "hang": "transient",
        "reset": "transient",
        "missing": "permanent",
        "private": "permanent",
        "broken": "permanent",
    }
    assert rows.loc[rows["status"] != "failed", "failure_kind"].isna().all()
    assert elapsed < 30
    digest = (ws.path / "data/summaries/shard-0/flaky/repo.txt").read_text()
    assert "served over smart HTTP" in digest


@pytest.mark.slow
def test_feed_cut_off_mid_body_fails_fetch_and_dvc_checkout_restores(workspace_factory, corpus) -> None:
    from tests.fixtures.feed_server import Answer, FeedServer, serve_feed

    _, entries = corpus
    body = json.dumps(entries[:4]).encode()
    with serve_feed(FeedServer(body)) as feed:
        ws = workspace_factory(feed.url)
        ws.set_params(shards={"batch_size": 2, "offsets": [0, 1]}, feed={"retries": 1})
        ws.dvc("repro")
        ws.commit("good run")
        snapshot = (ws.path / "data/repos.json").read_bytes()
        feed.script = [Answer(200, body, cut_after=len(body) // 2)] * 2
        feed.etag = '"tonight"'  # DVC sees a new feed and runs fetch
        result = ws.dvc("repro", check=False)
        assert result.returncode != 0
        assert "failed after 2 attempts" in result.stderr + result.stdout
        assert "Running stage 'shard@" not in result.stdout
        ws.dvc("checkout")
        assert (ws.path / "data/repos.json").read_bytes() == snapshot
        assert ws.dvc("status", "shard@0", "shard@1", "aggregate").stdout.strip() in (
            "",
            "Data and pipelines are up to date.",
        )
