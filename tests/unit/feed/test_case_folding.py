"""Owners or names that differ only in case cannot collide on a case-insensitive disk: fetch gives each owner one
spelling before any shard runs, and aggregate's advice for a case clash names a fix that works."""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from xgov_digests.feed.snapshot import parse_feed
from xgov_digests.results.outputs import DigestMismatch, check_digests


def entry(owner: str, name: str, pushed: str = "2026-01-01T00:00:00Z") -> dict:
    return {
        "owner": owner,
        "name": name,
        "url": f"https://github.com/{owner}/{name}",
        "description": "",
        "archived": False,
        "license": None,
        "stargazersCount": 0,
        "language": None,
        "forksCount": 0,
        "openIssuesCount": 0,
        "createdAt": "2024-01-01T00:00:00Z",
        "updatedAt": "2024-01-01T00:00:00Z",
        "pushedAt": pushed,
    }


def folders(snapshot) -> dict[str, set[str]]:
    """owner folder, case-folded -> the spellings it is written with (one each: nothing can collide)."""
    out: dict[str, set[str]] = {}
    for r in snapshot.repos:
        out.setdefault(r.owner.lower(), set()).add(r.owner)
    return out


def test_one_spelling_per_owner_whatever_the_feed_order(caplog) -> None:
    feed = [
        entry("Alphagov", "a"),
        entry("alphagov", "b"),
        entry("alphagov", "c"),
        entry("ukhomeoffice", "x"),
        entry("UKHomeOffice", "y"),
        entry("UKHomeOffice", "z"),
        entry("Org", "p"),
        entry("org", "q"),
    ]
    results = []
    for order in itertools.islice(itertools.permutations(feed), 0, None, 997):  # 41 of the 40,320 orders
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            snap = parse_feed(json.dumps(list(order)).encode())
        results.append((snap.records, [(r.owner, r.name, r.url) for r in snap.repos]))
        assert len(snap.repos) == 8 and snap.dropped == 0  # nobody is dropped: they are different repos
        assert all(len(s) == 1 for s in folders(snap).values())
        assert {r.owner for r in snap.repos} == {"alphagov", "UKHomeOffice", "Org"}  # the majority; a tie: the first
        assert all(rec["owner"] == r.owner for rec, r in zip(snap.records, snap.repos, strict=True))
        renamed = sorted(r.repo for r in caplog.records if "written" in getattr(r, "reason", ""))
        assert renamed == ["Alphagov/a", "org/q", "ukhomeoffice/x"]
    assert all(r == results[0] for r in results)
    urls = {r[1]: r[2] for r in results[0][1]}
    assert urls["a"] == "https://github.com/Alphagov/a"  # the URL is what the feed gave: only the folder changes


def test_owners_that_agree_are_left_alone() -> None:
    feed = [entry("alphagov", "a"), entry("Alphagov2", "b")]
    snap = parse_feed(json.dumps(feed).encode())
    assert [r.owner for r in snap.repos] == ["alphagov", "Alphagov2"]


def stats(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "offset": [0] * len(rows),
            "status": ["ok"] * len(rows),
            "owner": [o for o, _ in rows],
            "name": [n for _, n in rows],
        }
    )


def lay_out(root: Path, paths: list[str]) -> None:
    for rel in paths:
        path = root / "shard-0" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("digest\n")


def test_a_case_clash_gets_advice_that_works(tmp_path: Path) -> None:
    """Rows of an older snapshot (``Alphagov/a``, ``alphagov/b``) as a case-insensitive disk leaves them: one folder,
    spelled as the first digest written."""
    lay_out(tmp_path, ["Alphagov/a.txt", "Alphagov/b.txt"])
    with pytest.raises(DigestMismatch) as info:
        check_digests(stats([("Alphagov", "a"), ("alphagov", "b")]), [0], tmp_path)
    message = str(info.value)
    assert "differ only in case" in message and "dvc repro fetch" in message and "--force" not in message.split(":")[-1]
    assert "'dvc repro --force' cannot fix that" in message


def test_a_name_clash_gets_the_same_advice(tmp_path: Path) -> None:
    lay_out(tmp_path, ["org/Readme.txt"])  # 'org/README' and 'org/Readme' as one file
    with pytest.raises(DigestMismatch, match="differ only in case"):
        check_digests(stats([("org", "README"), ("org", "Readme")]), [0], tmp_path)


def test_the_case_check_can_fail(tmp_path: Path) -> None:
    """A digest simply missing is not a case clash: the advice stays the re-run of the shard."""
    lay_out(tmp_path, ["alphagov/a.txt"])
    with pytest.raises(DigestMismatch) as info:
        check_digests(stats([("alphagov", "a"), ("alphagov", "b")]), [0], tmp_path)
    assert "differ only in case" not in str(info.value) and "dvc repro --force shard@0" in str(info.value)
    assert check_digests(stats([("alphagov", "a")]), [0], tmp_path) == 1
