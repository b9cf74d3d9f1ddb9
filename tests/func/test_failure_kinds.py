"""A broken repository is a result, a network outage is not: real `dvc repro` against a git server on 127.0.0.1."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from ruamel.yaml import YAML

from tests.conftest import write_feed
from tests.fixtures.faulty_git import publish_bare, serve_git
from tests.fixtures.sample import make_repo


def feed_entry(owner: str, name: str = "repo") -> dict:
    return {
        "owner": owner,
        "name": name,
        "url": f"https://github.com/{owner}/{name}",
        "pushedAt": "2024-01-01T00:00:00Z",
    }


def locked_stages(ws) -> set[str]:
    lock = ws.path / "dvc.lock"
    return set(YAML(typ="safe").load(lock.read_text())["stages"]) if lock.exists() else set()


@pytest.mark.slow
def test_a_broken_repository_never_stops_a_run(workspace_factory, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_repo(src, {"README.md": "served over smart HTTP\n"})
    root = tmp_path / "srv"
    for owner in ("a-good", "broken", "c-good"):
        publish_bare(src, root, owner, "repo")
    # sorted by URL: a-good, broken, c-good -> one repo in each of three shards; 'broken' sends an incomplete pack
    feed = write_feed(tmp_path / "feed.json", [feed_entry(o) for o in ("c-good", "broken", "a-good")])
    shards = {"batch_size": 3, "offsets": [0, 1, 2], "assign": "index"}  # index: the sorted order above
    with serve_git(root) as server:
        ws = workspace_factory(str(feed), extra_env=server.insteadof_env(), retries=1)
        ws.set_params(shards=shards)
        ws.commit("three shards")
        ws.dvc("repro")
        assert server.packs["broken/repo"] == 2  # retried once, then a result
    rows = pd.read_parquet(ws.path / "data/stats.parquet").set_index("owner")
    assert rows.loc["broken", "status"] == "failed" and rows.loc["broken", "failure_kind"] == "permanent"
    assert rows.loc["broken", "offset"] == 1 and "invalid index-pack output" in rows.loc["broken", "error"]
    assert list(rows.loc[["a-good", "c-good"], "status"]) == ["ok", "ok"]
    assert {"shard@0", "shard@1", "shard@2", "aggregate"} <= locked_stages(ws)
    metrics = json.loads((ws.path / "reports/metrics.json").read_text())
    assert (metrics["failed"], metrics["failed_permanent"], metrics["failed_transient"]) == (1, 1, 0)
    table = pd.read_csv(ws.path / "reports/plots/shards.csv").set_index("offset")
    assert list(table["failed_permanent"]) == [0, 1, 0] and list(table["failed_transient"]) == [0, 0, 0]
    report = (ws.path / "reports/report.md").read_text()
    assert "## Failures (1: 1 permanent)" in report and "### Permanent (1)" in report
    assert "`broken/repo`" in report.split("### Permanent (1)")[1]
    # retry --dry: the shards that hold a failed repo
    assert ws.run(str(Path(sys.executable).with_name("xgov-digests")), "retry", "--dry").stdout.split() == ["shard@1"]

    # The same feed with the git server gone (connection refused): no complete answer, the shards fail and DVC
    # records none of them.
    down = workspace_factory(str(feed), name="down", extra_env=server.insteadof_env(), retries=1)
    down.set_params(shards=shards)
    down.commit("three shards")
    result = down.dvc("repro", check=False)
    assert result.returncode != 0 and "ERROR: failed to reproduce 'shard@" in result.stderr
    assert not locked_stages(down) & {"shard@0", "shard@1", "shard@2", "aggregate"}
    stats = pd.read_parquet(next((down.path / "data/stats").glob("shard-*.parquet")))
    assert list(stats["failure_kind"]) == ["transient"] and "Failed to connect" in stats["error"].iloc[0]
    logs = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any("1 of 1 repos failed without a complete answer" in r["message"] for r in logs)
