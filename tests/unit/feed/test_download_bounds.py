"""The feed download is bounded: a deadline per attempt, a cap on the decoded size, redirects checked.

Real HTTP(S) servers on 127.0.0.1 drip, never end, lie about their length and send compression bombs; each ends
in a FeedError (for fetch: one ``fetch: error:`` line, exit 2, the previous snapshot kept) within seconds and
without holding more than the cap.
"""

from __future__ import annotations

import gzip
import json
import logging
import time
import zlib
from pathlib import Path

import pytest

from tests.conftest import write_feed
from tests.fixtures.hostile_http import bomb, drip, endless, header_drip, send, serve_hostile, short_body
from xgov_digests.feed.download import FeedError, download
from xgov_digests.feed.snapshot import decode, parse_feed

MB = 1 << 20
GOOD = [{"owner": "a", "name": "b", "url": "https://github.com/a/b", "pushedAt": "2024-01-01T00:00:00Z"}]
GOOD_BODY = json.dumps(GOOD).encode()
GZIP_BOMB = bomb(256 * MB)  # 256 KB on the wire
DEFLATE_BOMB = bomb(256 * MB, 15)
RAW_DEFLATE_BOMB = bomb(256 * MB, -15)


def fetch_bounded(url: str, **kw) -> bytes:
    kw = {"timeout": 2.0, "retries": 0, "backoff": 0.01, "max_bytes": 4 * MB} | kw
    return download(url, **kw)


ROUTES = {
    "/good": lambda h: send(h, GOOD_BODY),
    "/gzip": lambda h: send(h, gzip.compress(GOOD_BODY), Content_Encoding="gzip"),
    "/deflate": lambda h: send(h, zlib.compress(GOOD_BODY), Content_Encoding="deflate"),
    "/raw-deflate": lambda h: send(h, _raw_deflate(GOOD_BODY), Content_Encoding="deflate"),
    "/gzip-members": lambda h: send(h, _gzip(GOOD_BODY[:10]) + _gzip(GOOD_BODY[10:]), Content_Encoding="gzip"),
    "/drip": drip,
    "/endless": endless,
    "/header-drip": header_drip,
    "/short": short_body,
    "/huge-length": lambda h: send(h, b"[]", Content_Length=str(10**12)),
    "/gzip-bomb": lambda h: send(h, GZIP_BOMB, Content_Encoding="gzip"),
    "/deflate-bomb": lambda h: send(h, DEFLATE_BOMB, Content_Encoding="deflate"),
    "/raw-deflate-bomb": lambda h: send(h, RAW_DEFLATE_BOMB, Content_Encoding="deflate"),
    "/gzip-members-bomb": lambda h: send(h, b"".join(bomb(MB) for _ in range(8)), Content_Encoding="gzip"),
    "/x-gzip-bomb": lambda h: send(h, GZIP_BOMB, Content_Encoding="X-GZIP"),
    "/gzip-gzip": lambda h: send(h, _gzip(_gzip(GOOD_BODY)), Content_Encoding="gzip, gzip"),
    "/br": lambda h: send(h, b"\x0b\x02\x80[]\x03", Content_Encoding="br"),
    "/corrupt-gzip": lambda h: send(h, b"\x1f\x8b\x08\x00garbage-not-deflate", Content_Encoding="gzip"),
    "/cut-gzip": lambda h: send(h, _gzip(GOOD_BODY * 50)[:40], Content_Encoding="gzip"),
    "/bare-gzip": lambda h: send(h, GZIP_BOMB),
    "/loop": lambda h: send(h, b"", 302, Location="/loop"),
    "/to-good": lambda h: send(h, b"", 301, Location="/good"),
    "/to-ftp": lambda h: send(h, b"", 302, Location="ftp://127.0.0.1/repos.json"),
    "/to-file": lambda h: send(h, b"", 307, Location="file:///etc/passwd"),
}


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data)


def _raw_deflate(data: bytes) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    return comp.compress(data) + comp.flush()


@pytest.fixture(scope="module")
def server():
    with serve_hostile(ROUTES) as srv:
        yield srv


@pytest.mark.parametrize("path", ["/good", "/gzip", "/deflate", "/raw-deflate", "/gzip-members", "/to-good"])
def test_well_formed_feeds_are_decoded(server, path: str) -> None:
    assert fetch_bounded(server.base + path) == GOOD_BODY


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/drip", "no complete answer within feed.timeout (2.0 s)"),
        ("/header-drip", "no complete answer within feed.timeout (2.0 s)"),
        ("/endless", "larger than feed.max_bytes (4194304 bytes)"),
        ("/huge-length", "its Content-Length is 1000000000000"),
        ("/short", "failed after 1 attempts"),
        ("/gzip-bomb", "larger than feed.max_bytes (4194304 bytes) once decoded"),
        ("/deflate-bomb", "larger than feed.max_bytes (4194304 bytes) once decoded"),
        ("/raw-deflate-bomb", "larger than feed.max_bytes (4194304 bytes) once decoded"),
        ("/gzip-members-bomb", "larger than feed.max_bytes (4194304 bytes) once decoded"),
        ("/x-gzip-bomb", "once decoded"),
        ("/gzip-gzip", "only one of gzip or deflate is decoded"),
        ("/br", "only one of gzip or deflate is decoded"),
        ("/corrupt-gzip", "compressed body is corrupt"),
        ("/cut-gzip", "the compressed body ended early"),
        ("/loop", "redirects more than 10 times"),
        ("/to-ftp", "redirects to a 'ftp' URL"),
        ("/to-file", "redirects to a 'file' URL"),
    ],
)
def test_hostile_servers_fail_fast_and_small(server, path: str, message: str) -> None:
    start = time.monotonic()
    with pytest.raises(FeedError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        fetch_bounded(server.base + path)
    assert time.monotonic() - start < 8, "an attempt outlived its deadline"
    assert "\n" not in str(caught.value)


def test_the_deadline_covers_every_attempt(server) -> None:
    """Two attempts of a drip take two deadlines (plus the backoff), not the 10^9 bytes the server promises."""
    start = time.monotonic()
    with pytest.raises(FeedError, match="failed after 2 attempts"):
        fetch_bounded(server.base + "/drip", timeout=1.0, retries=1)
    assert 2 <= time.monotonic() - start < 6


def test_a_bomb_within_the_default_cap_is_decoded_and_one_over_it_is_not(server) -> None:
    assert len(fetch_bounded(server.base + "/gzip-bomb", max_bytes=256 * MB, timeout=30)) == 256 * MB
    with pytest.raises(FeedError, match="once decoded"):
        fetch_bounded(server.base + "/gzip-bomb", max_bytes=256 * MB - 1, timeout=30)


def test_redirects_are_logged_with_their_final_url_and_host(server, caplog) -> None:
    other_host = server.base.replace("127.0.0.1", "localhost")
    server.routes["/elsewhere"] = lambda h: send(h, b"", 302, Location=other_host + "/to-good")
    caplog.set_level(logging.INFO, logger="xgov_digests.feed.download")
    assert fetch_bounded(server.base + "/elsewhere") == GOOD_BODY
    hops = [r for r in caplog.records if r.getMessage() == "feed redirects to another host"]
    assert [(r.__dict__["from"], r.__dict__["to"]) for r in hops] == [
        (server.base + "/elsewhere", other_host + "/to-good")
    ]
    final = [r for r in caplog.records if r.getMessage() == "feed redirected"]
    assert [r.final_url for r in final] == [other_host + "/good"]


def test_https_never_redirects_to_http(tmp_path: Path, server, monkeypatch) -> None:
    with serve_hostile({}, tls_folder=tmp_path) as tls:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "cert.pem"))
        tls.routes["/good"] = lambda h: send(h, GOOD_BODY)
        tls.routes["/to-http"] = lambda h: send(h, b"", 302, Location=server.base + "/good")
        tls.routes["/to-https"] = lambda h: send(h, b"", 302, Location="/good")
        assert fetch_bounded(tls.base + "/to-https") == GOOD_BODY  # the https server itself answers
        hits = len(server.hits)
        with pytest.raises(FeedError, match="redirects from https to http://127.0.0.1.*refused"):
            fetch_bounded(tls.base + "/to-http", retries=2)
        assert len(server.hits) == hits, "the http URL was requested"


def test_a_local_feed_has_the_same_cap(tmp_path: Path) -> None:
    path = tmp_path / "repos.json"
    path.write_bytes(GOOD_BODY)
    assert fetch_bounded(str(path), max_bytes=len(GOOD_BODY)) == GOOD_BODY
    with pytest.raises(FeedError, match="larger than feed.max_bytes"):
        fetch_bounded(str(path), max_bytes=len(GOOD_BODY) - 1)
    with pytest.raises(FeedError, match="larger than feed.max_bytes"):
        fetch_bounded("/dev/zero")  # endless: read up to the cap, not until memory runs out


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (GZIP_BOMB, "gzip data sent without Content-Encoding"),
        (b"\xef\xbb\xbf" + GOOD_BODY, None),  # a UTF-8 byte order mark is accepted
        (GOOD_BODY.replace(b'"b"', b'"b\xe9"', 1), "not valid JSON"),  # Latin-1, not UTF-8
        (b'[{"owner": "a", "name": "' + b"x" * (8 * MB) + b'"}]', "no usable repository"),  # one huge string
        (b'{"owner": "a", "name": "b", "url": "https://github.com/a/b"}', "must be a JSON list"),
        (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
        (b'[{"x": ' * 200_000 + b"1" + b"}]" * 200_000, "nested too deeply"),
        (b"[Infinity]", "no usable repository"),
    ],
)
def test_body_forms(body: bytes, message: str | None) -> None:
    if message is None:
        assert [r.name for r in parse_feed(body).repos] == ["b"]
    else:
        with pytest.raises(FeedError, match=message):
            parse_feed(body)


def test_a_key_given_twice_drops_its_entry(caplog) -> None:
    twice = b'{"owner": "a", "name": "b", "url": "https://github.com/a/b", "owner": "evil"}'
    nested = b'{"owner": "a", "name": "c", "url": "https://github.com/a/c", "license": {"key": 1, "key": 2}}'
    snap = parse_feed(b"[" + twice + b"," + nested + b"," + GOOD_BODY[1:-1].replace(b"b", b"d") + b"]")
    assert [r.name for r in snap.repos] == ["d"] and snap.dropped == 2
    reasons = [r.reason for r in caplog.records if r.getMessage() == "dropping feed entry"]
    assert reasons == ["entry holds the key 'owner' twice", "entry holds the key 'key' twice"]
    assert decode(b'[{"a": 1}]') == [{"a": 1}]


def _fetch_error(ws, **env) -> tuple[int, list[str], float]:
    start = time.monotonic()
    result = ws.python("-m", "stages.fetch", check=False, timeout=120, env=env)
    said = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    return result.returncode, said, time.monotonic() - start


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/drip", "within feed.timeout (3 s)"),
        ("/endless", "larger than feed.max_bytes"),
        ("/gzip-bomb", "larger than feed.max_bytes"),
        ("/huge-length", "its Content-Length is"),
    ],
)
@pytest.mark.slow
def test_fetch_stage_fails_cleanly_and_keeps_the_snapshot(workspace_factory, tmp_path, server, path, message):
    """The documented failure: one ``fetch: error:`` line, exit 2, data/ as it was, within seconds."""
    feed = write_feed(tmp_path / "feed.json", GOOD)
    ws = workspace_factory(str(feed))
    ws.python("-m", "stages.fetch")
    before = (ws.path / "data/repos.json").read_bytes(), (ws.path / "data/manifests/shard-0.json").read_bytes()
    ws.set_params(feed={"url": server.base + path, "timeout": 3, "retries": 0, "max_bytes": 16 * MB})
    code, said, seconds = _fetch_error(ws)
    assert code == 2 and len(said) == 1 and said[0].startswith("fetch: error: ") and message in said[0], said
    assert seconds < 20
    after = (ws.path / "data/repos.json").read_bytes(), (ws.path / "data/manifests/shard-0.json").read_bytes()
    assert after == before


def test_fetch_out_of_memory_is_the_documented_error(workspace_factory, tmp_path, server) -> None:
    """A body within the cap whose parse needs more memory than the process may have: exit 2, one line."""
    lists = _gzip(b"[" + b"[]," * (12 * MB) + b"[]]")  # 36 MB decoded, ~0.8 GB once parsed
    server.routes["/many-lists"] = lambda h: send(h, lists, Content_Encoding="gzip")
    feed = write_feed(tmp_path / "feed.json", GOOD)
    ws = workspace_factory(str(feed))
    ws.python("-m", "stages.fetch")
    before = (ws.path / "data/repos.json").read_bytes()
    ws.set_params(feed={"url": server.base + "/many-lists", "timeout": 60, "retries": 0})
    limit = "import resource; resource.setrlimit(resource.RLIMIT_AS, (600 << 20, 600 << 20)); "
    run = "import runpy, sys; sys.argv = ['stages.fetch']; runpy.run_module('stages.fetch', run_name='__main__')"
    result = ws.python("-c", limit + run, check=False, timeout=120)
    said = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 2 and len(said) == 1 and "does not fit in this machine's memory" in said[0], said
    assert (ws.path / "data/repos.json").read_bytes() == before


def test_an_unreachable_feed_says_to_check_feed_url() -> None:
    """Nothing listens on port 9 of 127.0.0.1: one line naming the setting to check, fast."""
    start = time.monotonic()
    with pytest.raises(FeedError, match=r"failed after 2 attempts: ConnectionError.*check feed.url in params.yaml"):
        fetch_bounded("http://127.0.0.1:9/repos.json", retries=1)
    assert time.monotonic() - start < 5
