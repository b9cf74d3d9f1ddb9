"""Cloning real repositories: URL policy, shallow clone, empty and missing repos, timeouts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fixtures.sample import commit, git, make_repo, write_files
from xgov_digests.clone.git import (
    FAST_LINK,
    WATCH_MAX_S,
    WATCH_MIN_S,
    CloneError,
    EmptyRepo,
    UrlRejected,
    check_url,
    clone,
    failure_kind,
    watch_interval,
)
from xgov_digests.core.params import CloneSettings

ALLOWED = ("github.com",)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://github.com/a/b", "scheme 'http'"),
        ("ssh://git@github.com/a/b", "scheme 'ssh'"),
        ("git://github.com/a/b", "scheme 'git'"),
        ("ext::sh -c touch% /tmp/pwned", "scheme 'ext'"),
        ("--upload-pack=touch /tmp/pwned", "scheme"),
        ("https://gitlab.com/a/b", "not in ingest.allowed_hosts"),
        ("https://user:tok3n@github.com/a/b", "credentials"),
        ("file:///tmp/repo", "file:// URLs are not allowed"),
        ("https://github.com/", "plain names"),
        ("https://github.com/a/b/c", "plain names"),
        ("https://github.com/a/-b", "plain names"),
    ],
)
def test_url_policy_rejects(url: str, reason: str) -> None:
    with pytest.raises(UrlRejected, match=reason) as err:
        check_url(url, ALLOWED, allow_file_urls=False)
    assert "tok3n" not in str(err.value)


def test_url_policy_accepts() -> None:
    check_url("https://github.com/alphagov/govuk", ALLOWED, allow_file_urls=False)
    check_url("https://GitHub.com/alphagov/govuk.git", ALLOWED, allow_file_urls=False)
    check_url("file:///tmp/repo", ALLOWED, allow_file_urls=True)


def test_shallow_clone_of_latest_commit(tmp_path: Path) -> None:
    repo = tmp_path / "src"
    make_repo(repo, {"a.txt": "1", "b.txt": "2"}, commits=2)
    write_files(repo, {"a.txt": "3"})
    head = commit(repo, "third")
    checkout = clone(repo.as_uri(), tmp_path / "dst", CloneSettings())
    assert checkout.commit == head
    assert git(checkout.path, "rev-list", "--count", "HEAD") == "1"
    assert (checkout.path / "a.txt").read_text() == "3"


def test_empty_repo(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "empty")
    with pytest.raises(EmptyRepo):
        clone((tmp_path / "empty").as_uri(), tmp_path / "dst", CloneSettings())


def test_missing_repo_fails_at_once(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(CloneError, match="git clone failed"):
        clone((tmp_path / "nope").as_uri(), tmp_path / "dst", CloneSettings(retries=3, backoff=5))
    assert time.monotonic() - start < 4  # not retried: no backoff sleeps


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        ("fatal: unable to access 'https://github.com/o/r/': Could not resolve host: github.com", "transient"),
        ("fatal: unable to access 'https://github.com/o/r/': Failed to connect to github.com port 443", "transient"),
        ("error: RPC failed; curl 56 Recv failure: Connection reset by peer\nfatal: early EOF", "transient"),
        ("fatal: unable to access 'https://github.com/o/r/': The requested URL returned error: 502", "transient"),
        ("fatal: unable to access 'https://github.com/o/r/': The requested URL returned error: 429", "transient"),
        ("fatal: unable to access 'https://github.com/o/r/': SSL certificate problem: expired", "transient"),
        ("fatal: unable to access 'https://github.com/o/r/': gnutls_handshake() failed", "transient"),
        ("fatal: something git never said before", "transient"),
        ("remote: not found\nfatal: repository 'https://github.com/o/r/' not found", "permanent"),
        ("fatal: could not read Username for 'https://github.com': terminal prompts disabled", "permanent"),
        ("fatal: unable to access 'https://github.com/o/r/': The requested URL returned error: 403", "permanent"),
        (
            "error: 176 bytes of body are still expected\nfatal: early EOF\n"
            "fatal: fetch-pack: invalid index-pack output",
            "permanent",
        ),
        ("Cloning into '/tmp/xgov-clone-1/openssl-timed-out'...\nfatal: early EOF", "permanent"),
        ("fatal: repository 'https://github.com/tls/ssl/' not found", "permanent"),
    ],
)
def test_failure_kind_from_git_words(stderr: str, kind: str) -> None:
    assert failure_kind(stderr) == kind


def overshoot(room: int, interval=watch_interval) -> int:
    """Bytes past the limit a download at FAST_LINK can reach before the next look, ``room`` bytes short of it."""
    return max(0, int(interval(room) * FAST_LINK) - room)


@pytest.mark.parametrize("room", [0, 1 << 20, 20 << 20, 21 << 20, 100 << 20, 600 << 20, 2 << 30])
def test_a_download_passes_its_limit_by_no_more_than_at_fifty_looks_a_second(room: int) -> None:
    """Far from the limit a download is looked at twice a second (the pack-size watch was a twentieth of a 240-repo
    run's CPU at fifty), near it fifty times: a download at up to FAST_LINK passes the limit by at most what it
    would at fifty looks a second."""
    assert WATCH_MIN_S <= watch_interval(room) <= WATCH_MAX_S
    assert overshoot(room) <= int(WATCH_MIN_S * FAST_LINK)
    assert watch_interval(2 << 30) == WATCH_MAX_S and watch_interval(0) == WATCH_MIN_S


def test_the_overshoot_check_can_fail() -> None:
    """Twice a second at every distance would let a download 20 MB short of its limit pass it by hundreds of MB."""
    assert overshoot(20 << 20, interval=lambda room: WATCH_MAX_S) > int(WATCH_MIN_S * FAST_LINK)
