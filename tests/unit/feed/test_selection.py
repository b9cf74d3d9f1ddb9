"""Shard selection and manifests: which repos each shard takes, and the manifests that fix that choice."""

from __future__ import annotations

import json

import pytest

from xgov_digests.core.repo import Repo
from xgov_digests.feed.manifest import ManifestError, read_manifest, render, write_manifest
from xgov_digests.feed.selection import SelectionError, check_offsets, select
from xgov_digests.feed.snapshot import parse_feed


def repos(n: int) -> list[Repo]:
    return [Repo(f"https://github.com/o/r{i:03d}", "o", f"r{i:03d}", None) for i in range(n)]


def test_index_batch_10_offset_0_selects_every_tenth() -> None:
    all_repos = repos(100)
    chosen = select(all_repos, 10, 0, "index")
    assert [all_repos.index(r) for r in chosen] == list(range(0, 100, 10))


@pytest.mark.parametrize("assign", ["index", "hash"])
def test_offsets_cover_every_repo_exactly_once(assign: str) -> None:
    all_repos = repos(100)
    seen = [r for k in range(10) for r in select(all_repos, 10, k, assign)]
    assert sorted(r.url for r in seen) == sorted(r.url for r in all_repos)
    assert len(seen) == 100


@pytest.mark.parametrize(("batch", "offset"), [(10, 10), (10, -1), (0, 0)])
def test_bad_offsets_rejected(batch: int, offset: int) -> None:
    with pytest.raises(SelectionError):
        select(repos(5), batch, offset)


def test_offsets_must_match_batch_size() -> None:
    check_offsets([0, 1, 2], 3)
    with pytest.raises(SelectionError, match=r"set shards.offsets to \[0, 1, 2, 3\]"):
        check_offsets([0, 1, 2], 4)


def test_hash_assignment_moves_only_one_shard_when_a_repo_is_added() -> None:
    before = repos(50)
    after = sorted([*before, Repo("https://github.com/o/new", "o", "new", None)], key=lambda r: r.key)
    changed = [k for k in range(10) if select(before, 10, k, "hash") != select(after, 10, k, "hash")]
    assert len(changed) == 1
    changed_index = [k for k in range(10) if select(before, 10, k, "index") != select(after, 10, k, "index")]
    assert len(changed_index) > 1  # the trade-off docs/incremental.md describes


def test_manifest_ignores_everything_but_url_owner_name_pushed_at() -> None:
    feed = [
        {
            "owner": "o",
            "name": f"r{i}",
            "url": f"https://github.com/o/r{i}",
            "pushedAt": "2024-01-01T00:00:00Z",
            "stargazersCount": i,
            "description": "d",
        }
        for i in range(20)
    ]
    changed = [dict(e, stargazersCount=e["stargazersCount"] + 100, description="new") for e in feed]
    changed[3]["pushedAt"] = "2025-01-01T00:00:00Z"  # r3 is at index 13 in sorted order -> shard 3 only
    a, b = parse_feed(json.dumps(feed).encode()).repos, parse_feed(json.dumps(changed).encode()).repos
    differs = [  # a test of the index rule: the pushedAt change reaches only the shard at that index
        k
        for k in range(10)
        if render(10, k, "index", select(a, 10, k, "index")) != render(10, k, "index", select(b, 10, k, "index"))
    ]
    assert differs == [3]


def test_read_manifest_checks_batch_and_offset(tmp_path) -> None:
    path = tmp_path / "shard-1.json"
    write_manifest(path, 4, 1, "index", repos(3))
    assert len(read_manifest(path, 4, 1)) == 3
    with pytest.raises(ManifestError, match="written for batch size 4, offset 1"):
        read_manifest(path, 10, 1)
    with pytest.raises(ManifestError, match="dvc repro fetch"):
        read_manifest(tmp_path / "missing.json", 4, 1)
