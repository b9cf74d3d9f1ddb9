"""Incremental runs: DVC skips untouched shards; the digest cache skips unchanged repos inside a shard."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import GitSpy, point_r2_at, write_feed
from tests.fixtures.locals3 import LocalS3
from tests.fixtures.sample import build_corpus, commit, write_files
from xgov_digests.shard.cache import decode_entry

pytestmark = pytest.mark.slow
SHARDS = {"batch_size": 5, "offsets": [0, 1, 2, 3, 4], "assign": "index"}  # index: 2 or 3 repos in every shard


def snapshot(ws) -> dict[str, bytes]:
    root = ws.path / "data" / "summaries"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.txt"))}


def shard_runs(ws, output: str) -> list[str]:
    return [s for s in ws.ran_stages(output) if s.startswith("shard@")]


def stats(ws) -> pd.DataFrame:
    return pd.read_parquet(ws.path / "data/stats.parquet")


@pytest.fixture
def setup(tmp_path: Path, workspace_factory, git_spy: GitSpy):
    entries = build_corpus(tmp_path / "corpus", 12)
    feed = write_feed(tmp_path / "feed.json", entries)
    ws = workspace_factory(str(feed), extra_env=git_spy.env())
    ws.set_params(shards=SHARDS)
    ws.commit("5 shards")
    return ws, feed, entries, tmp_path / "corpus" / "repos"


def test_nightly_changes(setup, git_spy: GitSpy) -> None:
    ws, feed, entries, repos = setup
    ws.dvc("repro")
    assert len(git_spy.clones()) == 12
    first = snapshot(ws)
    ws.commit("first run")

    # 1. stars and descriptions change everywhere: no shard runs
    git_spy.reset()
    write_feed(feed, [dict(e, stargazersCount=e["stargazersCount"] + 7, description="new") for e in entries])
    out = ws.dvc("repro").stdout
    assert set(ws.ran_stages(out)) <= {"fetch", "aggregate"} and shard_runs(ws, out) == []
    assert git_spy.clones() == []

    # 2. one repo gets a new commit and pushedAt: one shard runs, one clone, the rest of that shard is cached
    target = entries[4]
    repo = repos / target["owner"] / target["name"]
    write_files(repo, {"NEW.md": "fresh\n"})
    new_head = commit(repo, "new work")
    entries[4] = dict(target, pushedAt="2025-06-01T00:00:00Z")
    write_feed(feed, entries)
    out = ws.dvc("repro").stdout
    ran = shard_runs(ws, out)
    assert len(ran) == 1, out
    assert len(git_spy.clones()) == 1 and target["url"] in git_spy.clones()[0]
    offset = int(ran[0].split("@")[1])
    rows = stats(ws).query("offset == @offset")
    assert rows.set_index("name").loc[target["name"], "status"] == "ok"
    assert set(rows[rows["name"] != target["name"]]["status"]) == {"cached"}
    digest = ws.path / f"data/summaries/shard-{offset}/{target['owner']}/{target['name']}.txt"
    assert f"Commit: {new_head}" in digest.read_text() and "FILE: NEW.md" in digest.read_text()
    shards = pd.read_csv(ws.path / "reports/plots/shards.csv").set_index("offset")
    assert shards.loc[offset, "cached"] == len(rows) - 1
    second = snapshot(ws)
    assert {k for k in first if first[k] != second[k]} == {
        f"{target['owner']}/{target['name']}.txt".join([f"shard-{offset}/", ""])
    }

    # 3. outputs deleted, cache kept: a forced repro clones nothing and restores identical digests
    git_spy.reset()
    shutil.rmtree(ws.path / "data" / "summaries")
    shutil.rmtree(ws.path / "data" / "stats")
    ws.dvc("repro", "--force")
    assert git_spy.clones() == []
    assert snapshot(ws) == second
    assert set(stats(ws)["status"]) == {"cached"}

    # 4. a corrupt cache entry is a miss: only that repo is cloned again
    git_spy.reset()
    entries_dir = ws.path / ".cache" / "digests"
    # the changed repo's entry for its old pushedAt is no longer read: corrupt one that the run needs
    live = [
        e
        for e in sorted(entries_dir.rglob("*.digest"))
        if json.loads(e.read_bytes().partition(b"\n")[0])["name"] != target["name"]
    ]
    assert len(live) == 11
    victim = live[0]
    victim.write_bytes(victim.read_bytes()[:-10])
    result = ws.dvc("repro", "--force")
    assert len(git_spy.clones()) == 1
    assert "corrupt or misplaced digest cache entry" in result.stderr + result.stdout
    assert snapshot(ws) == second


def test_hash_assignment_adds_a_repo_to_one_shard(setup, tmp_path: Path) -> None:
    ws, feed, entries, _ = setup
    ws.set_params(shards={"assign": "hash"})
    ws.dvc("repro")
    extra = build_corpus(tmp_path / "extra", 13)[12]
    extra = dict(extra, owner="neworg")
    write_feed(feed, [*entries, extra])
    out = ws.dvc("repro").stdout
    assert len(shard_runs(ws, out)) == 1, out
    assert len(stats(ws)) == 13


def test_make_retry_reruns_only_the_failed_shard(setup, tmp_path: Path) -> None:
    ws, feed, entries, repos = setup
    target = repos / entries[7]["owner"] / entries[7]["name"]
    hidden = tmp_path / "hidden-repo"
    target.rename(hidden)  # the "server" is down for this repo
    ws.dvc("repro")
    failed = stats(ws).query("status == 'failed'")
    assert list(failed["name"]) == [entries[7]["name"]]
    offset = int(failed["offset"].iloc[0])
    ws.commit("run with a failure")

    hidden.rename(target)  # back up
    shutil.copy2(Path(__file__).parents[2] / "Makefile", ws.path / "Makefile")
    venv = str(Path(__import__("sys").executable).parents[1])
    result = ws.run("make", "-o", f"{venv}/.installed", f"VENV={venv}", "retry")
    assert shard_runs(ws, result.stdout) == [f"shard@{offset}"], result.stdout
    assert "fetch" not in ws.ran_stages(result.stdout)
    after = stats(ws).set_index("name")["status"]
    assert after[entries[7]["name"]] == "ok" and "failed" not in set(after)
    assert "retry: the run's files are staged" in result.stdout

    # nothing left to retry: it says so, and does not claim to have staged anything
    again = ws.run("make", "-o", f"{venv}/.installed", f"VENV={venv}", "retry")
    assert "no failed repos in data/stats.parquet: nothing to retry, nothing staged" in again.stdout
    assert "files are staged" not in again.stdout and ws.ran_stages(again.stdout) == []


def test_cache_on_s3(setup, s3_server: LocalS3, git_spy: GitSpy) -> None:
    ws, *_ = setup
    bucket = s3_server.make_bucket("digest-cache")
    point_r2_at(ws, s3_server, bucket)
    ws.set_params(ingest={"cache": f"s3://{bucket}/cache"})
    ws.dvc("repro")
    assert len(git_spy.clones()) == 12
    assert len([k for k in s3_server.objects(bucket, "cache/") if k.endswith(".digest")]) == 12
    first = snapshot(ws)
    git_spy.reset()
    shutil.rmtree(ws.path / "data" / "summaries")
    ws.dvc("repro", "--force")
    assert git_spy.clones() == []
    assert snapshot(ws) == first

    # an entry copied to another repo's key passes its checksum but not its identity: a miss, then replaced
    client = s3_server.client()
    keys = sorted(k for k in s3_server.objects(bucket, "cache/") if k.endswith(".digest"))
    copied = client.get_object(Bucket=bucket, Key=keys[0])["Body"].read()
    client.put_object(Bucket=bucket, Key=keys[1], Body=copied)
    result = ws.dvc("repro", "--force")
    assert len(git_spy.clones()) == 1 and "corrupt or misplaced digest cache entry" in result.stderr + result.stdout
    assert snapshot(ws) == first
    replaced = client.get_object(Bucket=bucket, Key=keys[1])["Body"].read()
    assert replaced != copied and decode_entry(replaced).data.startswith(b"Repository: ")
