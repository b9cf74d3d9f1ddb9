"""Feed download (against a real HTTP server on 127.0.0.1), validation and normalisation."""

from __future__ import annotations

import json
import time

import pytest

from tests.fixtures.feed_server import Answer, FeedServer, serve_feed
from xgov_digests.download import FeedError, download
from xgov_digests.feed import parse_feed
from xgov_digests.repo import normalise_url


def entry(owner: str = "alphagov", name: str = "repo", **kw) -> dict:
    return {
        "owner": owner,
        "name": name,
        "url": f"https://github.com/{owner}/{name}",
        "pushedAt": "2024-01-01T00:00:00Z",
        "stargazersCount": 1,
        **kw,
    }


def test_download_retries_5xx_then_succeeds() -> None:
    body = json.dumps([entry()]).encode()
    with serve_feed(FeedServer(body, [Answer(500), Answer(503)])) as feed:
        assert download(feed.url, timeout=5, retries=3, backoff=0.01) == body
        assert feed.requests == 3


def test_download_retries_429() -> None:
    with serve_feed(FeedServer(b"[]", [Answer(429)])) as feed:
        assert download(feed.url, timeout=5, retries=1, backoff=0.01) == b"[]"


def test_download_4xx_fails_at_once_naming_url_and_status() -> None:
    with serve_feed(FeedServer(b"[]", [Answer(404)] * 5)) as feed:
        with pytest.raises(FeedError, match=r"HTTP 404") as err:
            download(feed.url, timeout=5, retries=3, backoff=0.01)
        assert feed.url in str(err.value)
        assert feed.requests == 1


def test_download_gives_up_after_retries() -> None:
    with serve_feed(FeedServer(b"[]", [Answer(500)] * 5)) as feed:
        with pytest.raises(FeedError, match="after 3 attempts: HTTP 500"):
            download(feed.url, timeout=5, retries=2, backoff=0.01)


def test_download_times_out_on_a_hanging_server() -> None:
    with serve_feed(FeedServer(b"[]", [Answer(200, b"[]", delay=3)] * 2)) as feed:
        start = time.monotonic()
        with pytest.raises(FeedError, match="ReadTimeout"):
            download(feed.url, timeout=0.5, retries=1, backoff=0.01)
        assert time.monotonic() - start < 2.5


def test_download_local_path(tmp_path) -> None:
    (tmp_path / "f.json").write_text("[]")
    assert download(str(tmp_path / "f.json")) == b"[]"
    with pytest.raises(FeedError, match="cannot read feed file"):
        download(str(tmp_path / "missing.json"))


def test_normalise_url() -> None:
    assert normalise_url("https://GitHub.com/AlphaGov/Repo.git/") == "https://github.com/alphagov/repo"
    assert normalise_url("https://github.com/a/b/") == normalise_url("https://github.com/a/b.git")


def test_invalid_entries_are_dropped_with_one_warning_each(caplog) -> None:
    feed = [entry("a", "one"), {"owner": "a", "name": "two"}, entry("b", 5), "nonsense", entry("c", "..")]
    snap = parse_feed(json.dumps(feed).encode())
    assert [r.name for r in snap.repos] == ["one"]
    assert snap.dropped == 4
    warnings = [r for r in caplog.records if r.getMessage() == "dropping feed entry"]
    assert [w.index for w in warnings] == [1, 2, 3, 4]
    assert "url is NoneType" in warnings[0].reason


def test_dedupe_case_insensitive_and_sorted_independent_of_order() -> None:
    feed = [entry("zeta", "z"), entry("Alpha", "A"), dict(entry("alpha", "a"), url="https://github.com/alpha/a.git/")]
    a = parse_feed(json.dumps(feed).encode())
    b = parse_feed(json.dumps(list(reversed(feed))).encode())
    assert a.duplicates == 1
    assert [r.key for r in a.repos] == ["https://github.com/alpha/a", "https://github.com/zeta/z"]
    assert a.records == b.records


def test_limit_takes_first_n_of_sorted() -> None:
    feed = [entry("o", f"r{i}") for i in (3, 1, 2)]
    assert [r.name for r in parse_feed(json.dumps(feed).encode(), limit=2).repos] == ["r1", "r2"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{}", "must be a JSON list"),
        (b"[1, 2]", "no usable repository"),
        (b"[", "not valid JSON"),
        (b"\xff\xfe[", "not valid JSON"),
        (b"[]", "no usable repository"),
    ],
)
def test_bad_bodies_fail_clearly(body: bytes, message: str) -> None:
    with pytest.raises(FeedError, match=message):
        parse_feed(body)


def test_null_pushed_at_kept_as_none() -> None:
    snap = parse_feed(json.dumps([entry(pushedAt=None)]).encode())
    assert snap.repos[0].pushed_at is None
