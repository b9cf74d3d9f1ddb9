"""Feed download (against a real HTTP server on 127.0.0.1), validation and normalisation."""

from __future__ import annotations

import json
import random
import re
import time

import pytest

from tests.fixtures.feed_server import Answer, FeedServer, serve_feed
from xgov_digests.core.backoff import attempts, delay
from xgov_digests.core.repo import normalise_url
from xgov_digests.feed.download import MAX_RETRY_AFTER_S, FeedError, download, retry_after, retry_delay
from xgov_digests.feed.entries import shown_url
from xgov_digests.feed.snapshot import parse_feed, render_snapshot


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


def test_retry_after_is_honoured_and_capped() -> None:
    with serve_feed(FeedServer(b"[]", [Answer(429, headers={"Retry-After": "1"})])) as feed:
        start = time.monotonic()
        assert download(feed.url, timeout=5, retries=1, backoff=0.01) == b"[]"
        assert time.monotonic() - start >= 1.0  # the server's wait, not the 0.01 s backoff
    assert retry_after("120") == 120.0 and retry_after("") is None and retry_after("soon") is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0 - 30) == 30.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0 + 30) == 0.0  # a past date: no wait
    assert retry_delay(1, 1.0, 3600.0) == MAX_RETRY_AFTER_S


def test_retry_delays_are_full_jitter() -> None:
    random.seed(7)
    waits = [retry_delay(3, 1.0, None) for _ in range(400)]
    assert all(0.0 <= w <= delay(3, 1.0) for w in waits)
    assert min(waits) < 0.5 and max(waits) > 3.5  # spread over [0, 4 s], not all at 4 s
    assert len({round(w, 6) for w in waits}) > 390


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
        with pytest.raises(FeedError, match="no complete answer within feed.timeout"):
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


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("https://github.com/alphagov/repo", "https://github.com/alphagov/repo"),
        ("HTTPS://GitHub.COM/AlphaGov/Repo.git/", "https://github.com/alphagov/repo"),
        ("https://github.com/alphagov/repo/", "https://github.com/alphagov/repo"),
        ("file:///srv/git/repo.git", "file:///srv/git/repo.git"),
    ],
)
def test_the_url_is_rebuilt_from_its_parts(url: str, canonical: str) -> None:
    assert parse_feed(json.dumps([entry(url=url)]).encode()).repos[0].url == canonical


def test_owner_and_name_must_agree_with_the_url(caplog) -> None:
    legit = entry("alphagov", "govuk-frontend", pushedAt="2024-01-01T00:00:00Z")
    forged = entry(
        "alphagov", "govuk-frontend", pushedAt="2030-01-01T00:00:00Z", url="https://github.com/attacker/govuk-frontend"
    )
    for feed in ([legit, forged], [forged, legit]):
        snap = parse_feed(json.dumps(feed).encode())
        assert [r.url for r in snap.repos] == ["https://github.com/alphagov/govuk-frontend"]
        assert snap.dropped == 1
    reasons = [r.reason for r in caplog.records if r.getMessage() == "dropping feed entry"]
    assert (
        reasons[0] == "url https://github.com/… does not point to 'alphagov/govuk-frontend': its path disagrees "
        "with owner/name"
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:tok@github.com/o/r", "https://github.com/…"),
        ("https://user:p@ss@github.com/o/r?x=1#y", "https://github.com/…"),
        ("https://user:secret/x@github.com/o/r", "https://user/…"),
        ("https://[::1/o/r", "https:///…"),
        ("git@github.com:o/r", "…"),
        ("https://github.com\u2100evil.com/o/r", "…"),
    ],
)
def test_warnings_show_a_url_only_up_to_its_host(url: str, shown: str) -> None:
    assert shown_url(url) == shown


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("2024-01-31T12:00:00Z", "2024-01-31T12:00:00Z"),
        ("2024-01-31T12:00:00.123Z", "2024-01-31T12:00:00.123Z"),
        ("2024-01-31T12:00:00+00:00", "2024-01-31T12:00:00Z"),
        ("2024-01-31T12:00:00+0000", "2024-01-31T12:00:00Z"),
        ("2024-01-31T12:00:00-00:00", "2024-01-31T12:00:00Z"),
        ("2026-07-15T10:19:22+01:00", "2026-07-15T09:19:22Z"),
        ("2024-01-31T12:00:00-05:30", "2024-01-31T17:30:00Z"),
        ("2024-01-01T00:30:00+0100", "2023-12-31T23:30:00Z"),  # the date moves back a day, and a year
        ("2024-03-01T01:00:00.250+02:00", "2024-02-29T23:00:00.25Z"),  # a leap day, the fraction kept
        ("2024-01-31T12:00:00.123456789Z", "2024-01-31T12:00:00.123456Z"),  # nanoseconds: to the microsecond
        ("2024-01-31T12:00:00.000Z", "2024-01-31T12:00:00Z"),
        (None, None),
        ("2024-01-31", None),
        ("2024-01-31T12:00:00", None),  # no offset: local to whom?
        ("2024-01-31T12:00:00+25:00", None),
        ("2024-01-31T12:00:60Z", None),
        ("2024-01-31 12:00:00Z", None),
        ("0001-01-01T00:30:00+01:00", None),  # before year 1 in UTC
        ("9999-12-31T23:30:00-01:00", None),  # after year 9999 in UTC
        ("2024-01-31T12:00:00+01:00\n", None),
        ("2024-13-01T00:00:00Z", None),
        ("2024\nCommit: 0000\nFiles analyzed: 9999", None),
        ("zzzz", None),
        ("２０２４-01-31T12:00:00Z", None),
        (20240131, None),
    ],
)
def test_pushed_at_is_a_utc_time_or_null(value, kept, caplog) -> None:
    snap = parse_feed(json.dumps([entry(pushedAt=value)]).encode())
    assert snap.repos[0].pushed_at == kept and snap.records[0]["pushedAt"] == kept
    notes = [r for r in caplog.records if r.getMessage() == "feed entry changed"]
    assert len(notes) == (value is not None and kept is None)
    if notes:
        reason = notes[0].reason
        assert notes[0].index == 0 and "not an ISO-8601 date and time with a UTC offset" in reason
        assert "\n" not in reason


def test_duplicates_are_ordered_by_parsed_time() -> None:
    """The latest push wins whatever the spelling; a forged date never wins."""
    feed = [
        entry(pushedAt="2024-05-01T00:00:00.5+00:00", description="latest"),
        entry(pushedAt="2024-05-01T00:00:00Z", description="earlier"),
        entry(pushedAt="zzzz", description="forged"),
        entry(pushedAt=None, description="none"),
    ]
    for order in (feed, feed[::-1], feed[1:] + feed[:1]):
        snap = parse_feed(json.dumps(order).encode())
        assert snap.records[0]["description"] == "latest" and snap.duplicates == 3


def test_names_must_match_whole() -> None:
    bad = [entry(name="x\n"), entry(owner="o\n"), entry(name="x\r\n"), entry(name="a\u0085")]
    snap = parse_feed(json.dumps([*bad, entry(name="ok")]).encode())
    assert [r.name for r in snap.repos] == ["ok"] and snap.dropped == 4


def test_dvc_special_names_are_dropped() -> None:
    special = [
        entry(".git", "a"),
        entry(".HG", "b"),
        entry(".dvc", "c"),
        entry(".dvcignore", "d"),
        entry("o", ".git"),
        entry("o", ".DVCignore"),
    ]
    snap = parse_feed(json.dumps([*special, entry(".github", ".github")]).encode())
    assert [(r.owner, r.name) for r in snap.repos] == [(".github", ".github")] and snap.dropped == 6


def test_backoff_schedule() -> None:
    assert [delay(n, 1.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert delay(20, 1.0) == 60.0
    waits: list[float] = []
    assert list(attempts(2, 0.001, lambda n, s: waits.append(s))) == [0, 1, 2]
    assert len(waits) == 2 and 0 <= waits[0] <= 0.001 and 0 <= waits[1] <= 0.002


def test_clone_retries_are_full_jitter_too() -> None:
    """The clones' schedule (attempts) spreads its waits as the feed's does: not all workers at the same moment."""
    random.seed(3)
    waits: list[float] = []
    for _ in range(200):
        for _ in attempts(3, 1e-6, lambda n, s: waits.append(s / 1e-6 / 2 ** (n - 1))):
            pass
    assert all(0.0 <= w <= 1.0 for w in waits)  # each within its exponential delay
    assert min(waits) < 0.1 and max(waits) > 0.9 and len({round(w, 6) for w in waits}) > 590


HOSTILE_TOKENS = [
    b"NaN",
    b"-Infinity",
    b"1e999",
    b"9" * 5000,
    b'"\\ud83d"',
    b'"\\udfff"',
    b"[" * 3000,
    b"{",
    b'"https://[::1/o/r"',
    '"github.com\u2100evil.com"'.encode(),
    b"\xff",
    b"\x00",
    b"null",
    b'"x\\n"',
    b'"2024\\nCommit: 0"',
    b"-0",
    b"1.5e308",
    b'{"a":' * 50,
]


def test_no_body_crashes_parse_feed() -> None:
    """Seeded mutations of a valid feed: every outcome is a snapshot of standard JSON or a FeedError."""
    rng = random.Random(11)
    base = json.dumps([entry("o", f"r{i}", topics=["a", {"b": [1, 2.5]}], pushedAt=None) for i in range(4)]).encode()
    outcomes = {"snapshot": 0, "error": 0}
    for _ in range(1500):
        body = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(body))
            if rng.random() < 0.6:
                body[at:at] = rng.choice(HOSTILE_TOKENS)
            else:
                del body[at : at + rng.randint(1, 8)]
        try:
            snap = parse_feed(bytes(body))
        except FeedError:
            outcomes["error"] += 1
            continue
        outcomes["snapshot"] += 1
        text = render_snapshot(snap.records).decode("utf-8")
        json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the snapshot"))
        for repo in snap.repos:  # canonical, and naming the repo it claims to be
            assert re.fullmatch(rf"https://[a-z0-9.-]+/{re.escape(repo.owner)}/{re.escape(repo.name)}", repo.url)
    assert min(outcomes.values()) > 100, outcomes
