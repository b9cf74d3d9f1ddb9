"""The feed URL is fetch's DVC dependency: an unchanged feed skips fetch and leaves ``dvc status`` clean, a changed
one is named by ``dvc status``; a server with no validator, and a file:// URL, are refused in one line. Real dvc, a
real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Workspace
from tests.fixtures.feed_server import Answer, FeedServer, serve_feed

pytestmark = pytest.mark.slow
UP_TO_DATE = "Data and pipelines are up to date."


def small(ws: Workspace) -> None:
    ws.set_params(shards={"batch_size": 2, "offsets": [0, 1]})


def test_an_unchanged_http_feed_skips_fetch_and_a_changed_one_is_named(workspace_factory, corpus) -> None:
    _, entries = corpus
    with serve_feed(FeedServer(json.dumps(entries[:3]).encode())) as feed:
        ws = workspace_factory(feed.url)
        small(ws)
        assert ws.ran_stages(ws.dvc("repro").stdout)[0] == "fetch"
        ws.commit("night 1")
        lock = (ws.path / "dvc.lock").read_text()
        assert f"path: {feed.url}" in lock and feed.current_etag() in lock  # DVC recorded the server's ETag
        assert ws.dvc("status").stdout.strip() == UP_TO_DATE
        assert ws.ran_stages(ws.dvc("repro").stdout) == [] and feed.heads > 0  # DVC asked the server, ran nothing

        feed.body = json.dumps(entries[:4]).encode()  # tonight's feed: one repo more, a new ETag
        assert ws.dvc("status").stdout.split() == ["fetch:", "changed", "deps:", "modified:", feed.url]
        ran = ws.ran_stages(ws.dvc("repro").stdout)
        assert ran[0] == "fetch" and ran[-1] == "aggregate"
        assert len(json.loads((ws.path / "data/repos.json").read_text())) == 4
        assert ws.dvc("status").stdout.strip() == UP_TO_DATE


def test_a_server_without_validators_is_refused_in_one_line(workspace_factory, corpus) -> None:
    _, entries = corpus
    with serve_feed(FeedServer(json.dumps(entries[:2]).encode(), etag=None)) as feed:
        ws = workspace_factory(feed.url)
        small(ws)
        result = ws.dvc("repro", check=False)
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith("fetch: error: ")]
        assert result.returncode != 0 and len(errors) == 1, result.stderr
        assert "none of the headers ETag, Content-MD5, Digest, Last-Modified" in errors[0]
        assert "Traceback" not in result.stderr and not (ws.path / "data/repos.json").exists()


def test_the_validator_check_can_fail(corpus) -> None:
    """The same server with an ETag is accepted: the refusal above is about the header, nothing else."""
    from xgov_digests.feed.download import FeedError, download

    with serve_feed(FeedServer(b"[]", script=[Answer(200, b"[]")])) as feed:
        assert download(feed.url, require_validator=True) == b"[]"
        feed.etag = None
        with pytest.raises(FeedError, match="none of the headers"):
            download(feed.url, require_validator=True)
        assert download(feed.url) == b"[]"  # without DVC (the shard CLI's --feed) no validator is needed


def test_a_local_feed_path_is_tracked_by_its_md5(workspace_factory, corpus, tmp_path: Path) -> None:
    _, entries = corpus
    path = tmp_path / "feed.json"
    path.write_text(json.dumps(entries[:3]))
    ws = workspace_factory(str(path))
    small(ws)
    ws.dvc("repro")
    assert ws.dvc("status").stdout.strip() == UP_TO_DATE
    assert ws.ran_stages(ws.dvc("repro").stdout) == []
    path.write_text(json.dumps(entries[:2]))
    assert ws.dvc("status").stdout.split() == ["fetch:", "changed", "deps:", "modified:", str(path)]


def test_a_file_url_feed_is_refused_naming_the_path_to_write(workspace_factory, corpus, tmp_path: Path) -> None:
    _, entries = corpus
    path = tmp_path / "feed.json"
    path.write_text(json.dumps(entries[:2]))
    ws = workspace_factory(path.as_uri())
    result = ws.python("-m", "stages.fetch", check=False)
    assert result.returncode == 2 and f"write the path itself ('{path}')" in result.stderr, result.stderr
