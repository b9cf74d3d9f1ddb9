"""The shard CLI on its own: usage, dry run, standalone --feed, failures, real overlap of workers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import GitSpy, write_feed
from xgov_digests.feed.selection import select
from xgov_digests.feed.snapshot import parse_feed


def test_help_shows_examples(workspace_factory) -> None:
    ws = workspace_factory("feed.json")
    out = ws.python("-m", "stages.shard", "--help").stdout
    assert "examples:" in out and "--batch-size 10 --offset 3 --dry-run" in out


def test_offset_not_below_batch_size_is_a_usage_error(workspace_factory) -> None:
    ws = workspace_factory("feed.json")
    result = ws.python("-m", "stages.shard", "--batch-size", "10", "--offset", "10", check=False)
    assert result.returncode == 2
    assert "--offset must be between 0 and 9" in result.stderr


def test_missing_manifest_says_what_to_run(workspace_factory) -> None:
    ws = workspace_factory("feed.json")
    result = ws.python("-m", "stages.shard", "--batch-size", "10", "--offset", "1", check=False)
    assert result.returncode == 2 and "dvc repro fetch" in result.stderr


def test_dry_run_lists_and_clones_nothing(workspace_factory, corpus, git_spy: GitSpy, tmp_path: Path) -> None:
    _, entries = corpus
    feed = write_feed(tmp_path / "feed.json", entries)
    ws = workspace_factory(str(feed))
    ws.set_params(shards={"assign": "index"})  # the index rule: the two repos below are at index 9 and 19
    out = ws.python(
        "-m", "stages.shard", "--batch-size", "10", "--offset", "3", "--feed", str(feed), "--dry-run", env=git_spy.env()
    ).stdout
    listed = [ln.split("\t")[0] for ln in out.splitlines() if not ln.startswith("#")]
    expected = select(parse_feed(feed.read_bytes()).repos, 10, 3, "index")
    assert listed == [f"{r.owner}/{r.name}" for r in expected] == ["org0/project-009", "org1/project-019"]
    assert "2 repos (dry run, nothing cloned)" in out
    assert git_spy.clones() == []
    assert not (ws.path / "data" / "summaries").exists()


@pytest.mark.slow
def test_standalone_feed_with_a_missing_repo(workspace_factory, corpus, tmp_path: Path) -> None:
    _, entries = corpus
    broken = dict(entries[0], name="gone", url=(tmp_path / "gone").as_uri())
    feed = write_feed(tmp_path / "feed.json", [*entries[:9], broken])
    ws = workspace_factory(str(feed))
    rows = []
    for offset in range(2):
        result = ws.python("-m", "stages.shard", "--batch-size", "2", "--offset", str(offset), "--feed", str(feed))
        assert "complete:" in result.stderr
        rows.append(pd.read_parquet(ws.path / f"data/stats/shard-{offset}.parquet"))
    stats = pd.concat(rows)
    assert len(stats) == 10
    failed = stats[stats["status"] == "failed"]
    assert list(failed["name"]) == ["gone"] and "git clone failed" in failed["error"].iloc[0]
    ok = stats[stats["status"] == "ok"]
    assert len(ok) == 9
    for row in ok.itertuples():
        digest = ws.path / f"data/summaries/shard-{row.offset}/{row.owner}/{row.name}.txt"
        assert digest.read_bytes().startswith(f"Repository: {row.owner}/{row.name}\n".encode())
        assert row.digest_bytes == digest.stat().st_size and len(row.commit) == 40
    assert not (ws.path / "data/summaries/shard-1/org0/gone.txt").exists()


@pytest.mark.slow
def test_logs_are_json_with_batch_and_offset(workspace_factory, corpus, tmp_path: Path) -> None:
    _, entries = corpus
    feed = write_feed(tmp_path / "feed.json", entries[:4])
    ws = workspace_factory(str(feed))
    ws.set_params(shards={"assign": "index"})  # index: offset 1 of 2 takes exactly 2 of the 4 repos
    result = ws.python("-m", "stages.shard", "--batch-size", "2", "--offset", "1", "--feed", str(feed))
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert all(r["batch_size"] == 2 and r["offset"] == 1 for r in records)
    messages = [r["message"] for r in records]
    assert "Processing batch 2, offset 1: 2/2 repos" in messages
    assert messages[-1] == "Batch 2, offset 1 complete: 2 ok, 0 cached, 0 failed"


@pytest.mark.slow
def test_too_many_transient_failures_fail_the_stage(workspace_factory, tmp_path: Path, corpus) -> None:
    """3 of 4 repos get no answer (github.com is a closed local port here): the network looks down."""
    _, entries = corpus
    down = [dict(entries[0], owner="o", name=f"down{i}", url=f"https://github.com/o/down{i}") for i in range(3)]
    feed = write_feed(tmp_path / "feed.json", [entries[0], *down])
    ws = workspace_factory(str(feed), retries=0)
    result = ws.python("-m", "stages.shard", "--batch-size", "1", "--offset", "0", "--feed", str(feed), check=False)
    assert result.returncode == 1 and "max_failure_ratio" in result.stderr and "(transient)" in result.stderr


@pytest.mark.slow
def test_permanent_failures_never_fail_the_stage(workspace_factory, tmp_path: Path, corpus) -> None:
    """3 of 4 repos are missing: each is a failed row (a result), and the stage succeeds."""
    _, entries = corpus
    gone = [dict(entries[0], name=f"gone{i}", url=(tmp_path / f"gone{i}").as_uri()) for i in range(3)]
    feed = write_feed(tmp_path / "feed.json", [entries[0], *gone])
    ws = workspace_factory(str(feed))
    ws.python("-m", "stages.shard", "--batch-size", "1", "--offset", "0", "--feed", str(feed))
    rows = pd.read_parquet(ws.path / "data/stats/shard-0.parquet").set_index("name")
    assert rows.loc[entries[0]["name"], "status"] == "ok"
    assert [rows.loc[f"gone{i}", "failure_kind"] for i in range(3)] == ["permanent"] * 3


@pytest.mark.slow
def test_workers_overlap(workspace_factory, corpus, git_spy: GitSpy, tmp_path: Path) -> None:
    """With a 1 s delay in every clone, 4 workers finish 8 repos in about a quarter of their summed clone time."""
    _, entries = corpus
    feed = write_feed(tmp_path / "feed.json", entries[:8])
    ws = workspace_factory(str(feed))
    ws.python(
        "-m",
        "stages.shard",
        "--batch-size",
        "1",
        "--offset",
        "0",
        "--feed",
        str(feed),
        "--workers",
        "4",
        env=git_spy.env(sleep=1),
    )
    intervals = sorted(git_spy.clone_intervals())
    assert len(intervals) == 8
    most_at_once = max(sum(1 for s, e in intervals if s <= t < e) for t, _ in intervals)
    assert most_at_once >= 3
    # The time at least one clone ran: one at a time, it would be the clones' summed time; four at once make it
    # about a quarter. Compared with that sum, not with the run's span in seconds, which a loaded machine stretches
    # with the work between clones (digests, process start-ups) that no overlap can hide.
    covered, end = 0.0, 0.0
    for s, e in intervals:
        covered += max(0.0, e - max(s, end))
        end = max(end, e)
    summed = sum(e - s for s, e in intervals)
    assert summed >= 8
    assert covered < summed / 2, (covered, summed)
