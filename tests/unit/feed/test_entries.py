"""Entries a shard could not clone never displace one it could; `.git` names; collisions reported and stable."""

from __future__ import annotations

import itertools
import json

import pytest

from tests.fixtures.intruders import INTRUDERS, REAL, entry
from xgov_digests.feed.snapshot import parse_feed

HOSTS = ("github.com",)


def snap(feed: list[dict], **kw):
    return parse_feed(json.dumps(feed).encode(), allowed_hosts=HOSTS, allow_file_urls=False, **kw)


@pytest.mark.parametrize("intruder", INTRUDERS, ids=[e["description"] for e in INTRUDERS])
def test_no_entry_displaces_a_clonable_one(intruder: dict) -> None:
    for feed in ([REAL, intruder], [intruder, REAL]):
        got = snap(feed)
        assert [(r.owner, r.name, r.url) for r in got.repos] == [("alphagov", "router", REAL["url"])]
        assert got.records[0]["description"] == "real"


def test_all_intruders_at_once_in_every_order() -> None:
    results = set()
    for order in itertools.permutations([REAL, *INTRUDERS[:5]]):
        got = snap(list(order))
        results.add(json.dumps(got.records, sort_keys=True))
    assert len(results) == 1 and json.loads(results.pop())[0]["description"] == "real"


def test_a_lone_refused_entry_stays_for_the_shard_to_fail() -> None:
    got = snap([INTRUDERS[0], entry("alphagov", "other")])
    assert [r.url for r in got.repos] == ["https://a.example/alphagov/router", "https://github.com/alphagov/other"]


def test_collision_is_reported_with_both_entries_and_the_reason(caplog) -> None:
    snap([INTRUDERS[0], REAL])
    [drop] = [r for r in caplog.records if r.getMessage() == "dropping feed entry"]
    assert drop.index == 0 and drop.kept_index == 1 and drop.repo == "alphagov/router"
    assert "https://github.com/alphagov/router" in drop.reason and "could not be cloned" in drop.reason
    assert "not in ingest.allowed_hosts" in drop.reason


def test_two_clonable_entries_latest_push_then_url_order(caplog) -> None:
    hosts = ("github.com", "gitlab.com")
    gh = entry("alphagov", "router")
    gl = entry("alphagov", "router", "https://gitlab.com/alphagov/router", "2025-01-01T00:00:00+01:00")
    for feed in ([gh, gl], [gl, gh]):
        got = parse_feed(json.dumps(feed).encode(), allowed_hosts=hosts)
        assert [r.url for r in got.repos] == [gl["url"]] and got.repos[0].pushed_at == "2024-12-31T23:00:00Z"
    reasons = [r.reason for r in caplog.records if r.getMessage() == "dropping feed entry"]
    assert reasons and all("its pushedAt is older" in r for r in reasons)
    same_time = dict(gl, pushedAt=gh["pushedAt"])
    for feed in ([gh, same_time], [same_time, gh]):
        assert [r.url for r in parse_feed(json.dumps(feed).encode(), allowed_hosts=hosts).repos] == [gh["url"]]


def test_same_url_spellings_are_one_repo() -> None:
    spellings = [
        entry("alphagov", "router", u)
        for u in (
            "https://github.com/alphagov/router/",
            "https://github.com/alphagov/router.git",
            "https://GitHub.com/alphagov/router",
            "https://github.com/alphagov/router.git/",
        )
    ]
    got = snap([*spellings, REAL])
    assert [r.url for r in got.repos] == [REAL["url"]] and got.duplicates == 4


def test_dot_git_names_are_dropped(caplog) -> None:
    got = snap([entry("alphagov", "router.git"), entry("alphagov", "Tool.GIT"), REAL])
    assert [r.name for r in got.repos] == ["router"] and got.dropped == 2
    reasons = [r.reason for r in caplog.records if r.getMessage() == "dropping feed entry"]
    assert all("ends in '.git'" in r for r in reasons) and len(reasons) == 2
