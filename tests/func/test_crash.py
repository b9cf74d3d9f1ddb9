"""Crashes and secrets: kill -9 mid-shard and mid-push lose nothing; credentials appear nowhere."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import GitSpy, Workspace, point_r2_at, write_feed
from tests.fixtures.locals3 import LocalS3
from tests.fixtures.s3proxy import S3Proxy
from tests.fixtures.sample import build_corpus
from xgov_digests.core.params import load_params
from xgov_digests.feed.snapshot import parse_feed
from xgov_digests.shard.cache import cache_key, decode_entry, fingerprint

pytestmark = pytest.mark.slow


def start(ws: Workspace, *cmd: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        cmd,
        cwd=ws.path,
        env={**ws.env, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_kill_9_mid_shard(workspace_factory, tmp_path: Path, git_spy: GitSpy) -> None:
    feed = write_feed(tmp_path / "feed.json", build_corpus(tmp_path / "corpus", 12))
    ws = workspace_factory(str(feed), extra_env=git_spy.env(sleep=0.3))
    ws.set_params(shards={"batch_size": 1, "offsets": [0]})
    ws.commit("one shard")
    repos = parse_feed(feed.read_bytes()).repos
    fp = fingerprint(load_params(ws.path / "params.yaml").ingest)

    def path_of(repo) -> str:
        key = cache_key(repo, fp)
        return f"{key[:2]}/{key}.digest"

    out = ws.path / "data" / "summaries" / "shard-0"
    proc = start(ws, "dvc", "repro")
    wait_for(lambda: len(list(out.rglob("*.txt"))) >= 4)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.txt")}
    assert 4 <= len(before) < 12
    cache = sorted((ws.path / ".cache" / "digests").rglob("*.digest"))
    assert cache and all(decode_entry(p.read_bytes()) for p in cache)

    cached_urls = {r.url for r in repos if (ws.path / ".cache" / "digests" / path_of(r)).exists()}
    assert len(cached_urls) == len(cache)
    git_spy.reset()
    ws.dvc("repro")
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.txt")}
    assert len(after) == 12
    assert all(after[k] == v for k, v in before.items())  # no digest written before the kill was partial
    recloned = [url for url in cached_urls if any(f" {url} " in call for call in git_spy.clones())]
    assert recloned == []  # what was cached is not cloned again
    assert not [p for p in (ws.path / "data").rglob("*") if p.name.endswith(".tmp")]
    assert all(decode_entry(p.read_bytes()) for p in (ws.path / ".cache" / "digests").rglob("*.digest"))
    assert "shard@0" not in ws.dvc("status").stdout


def test_interrupted_push_completes_when_run_again(workspace_factory, tmp_path: Path, s3_server: LocalS3) -> None:
    feed = write_feed(tmp_path / "feed.json", build_corpus(tmp_path / "corpus", 8))
    ws = workspace_factory(str(feed))
    ws.set_params(shards={"batch_size": 2, "offsets": [0, 1]})
    bucket = s3_server.make_bucket("interrupted-push")
    host, port = s3_server.server.get_host_and_port()
    proxy = S3Proxy((host, port))
    try:
        point_r2_at(ws, s3_server, bucket)
        ws.dvc("remote", "modify", "r2", "endpointurl", proxy.endpoint)
        ws.dvc("repro")
        ws.commit("run")
        proxy.hold_after = 6  # the 7th upload and later hang: the push is mid-way
        push = start(ws, "dvc", "push", "-r", "r2")
        wait_for(lambda: proxy.held >= 1 and proxy.forwarded_puts >= 6)
        os.killpg(push.pid, signal.SIGKILL)
        push.wait()
        partial = len(s3_server.objects(bucket))
        proxy.reset()
        ws.dvc("push", "-r", "r2")
        assert len(s3_server.objects(bucket)) > partial

        clone = Workspace(tmp_path / "clone", ws.env)
        ws.run("git", "clone", "-q", str(ws.path), str(clone.path))
        clone.dvc("pull", "-r", "r2")
        for path in (ws.path / "data").rglob("*"):
            if path.is_file():
                assert (clone.path / path.relative_to(ws.path)).read_bytes() == path.read_bytes()
    finally:
        proxy.stop()


def test_secrets_appear_nowhere(workspace_factory, tmp_path: Path, s3_server: LocalS3) -> None:
    markers = {
        "AWS_SECRET_ACCESS_KEY": "aws-MARKER-7f3a",
        "R2_SECRET_ACCESS_KEY": "r2-MARKER-91bc",
        "GITHUB_TOKEN": "ghp_MARKER5d2e",
        "R2_ACCESS_KEY_ID": "r2id-MARKER-00aa",
    }
    # secrets that only the feed carries, in every part of a URL a token can hide in
    feed_markers = {
        "query": "ghp_QUERY-MARKER-1",
        "fragment": "ghp_FRAGMENT-MARKER-2",
        "at-password": "AT-PASSWORD-MARKER-3",
        "space-password": "SPACE-PASSWORD-MARKER-4",
        "query-only": "QUERY-ONLY-MARKER-5",
    }
    entries = build_corpus(tmp_path / "corpus", 6)
    entries.append(dict(entries[0], name="with-token", url=f"https://x:{markers['GITHUB_TOKEN']}@github.com/o/r"))
    for name, url in {
        "query": f"https://github.com/o/query?access_token={feed_markers['query']}",
        "fragment": f"https://github.com/o/fragment#{feed_markers['fragment']}",
        "at-password": f"https://x:p@ss{feed_markers['at-password']}@github.com/o/at-password",
        "space-password": f"https://x:p ss{feed_markers['space-password']}@github.com/o/space-password",
        "query-only": f"{entries[1]['url']}?token={feed_markers['query-only']}",
    }.items():
        entries.append(dict(entries[1], owner="o", name=name, url=url))
    feed = write_feed(tmp_path / "feed.json", entries)
    ws = workspace_factory(str(feed), extra_env={"AWS_ACCESS_KEY_ID": "id", **markers})
    ws.set_params(shards={"batch_size": 2, "offsets": [0, 1]})
    bucket = s3_server.make_bucket("secrets")
    ws.dvc("remote", "modify", "r2", "url", f"s3://{bucket}/dvc")
    ws.dvc("remote", "modify", "r2", "endpointurl", s3_server.endpoint)
    ws.set_params(ingest={"cache": f"s3://{bucket}/cache"})
    command = str(Path(sys.executable).with_name("xgov-digests"))
    logs = [ws.dvc("repro", "-v"), ws.dvc("push", "-r", "r2", "-v"), ws.run(command, "publish")]
    ws.commit("run")
    texts = [r.stdout + r.stderr for r in logs]
    files = [p for p in ws.path.rglob("*") if p.is_file() and ".git" not in p.relative_to(ws.path).parts[:1]]
    assert any(p.name == "dvc.lock" for p in files) and any(p.suffix == ".txt" for p in files)
    client = s3_server.client()
    objects = [client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in s3_server.objects(bucket)]
    assert len(objects) > 10
    assert sum(text.count("dropping feed entry") for text in texts) == len(feed_markers) + 1
    for marker in [*markers.values(), *feed_markers.values()]:
        assert all(marker not in text for text in texts), marker
        for path in files:
            assert marker.encode() not in path.read_bytes(), (marker, path)
        assert all(marker.encode() not in body for body in objects), marker


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_a_shard_stops_its_clones(workspace_factory, tmp_path: Path, git_spy: GitSpy, sig) -> None:
    """Ctrl-C or SIGTERM ends the shard at once: queued repos are dropped and running clones are killed."""
    import psutil

    feed = write_feed(tmp_path / "feed.json", build_corpus(tmp_path / "corpus", 8))
    tmp = tmp_path / "tmp"  # this test's clones only: other pytest-xdist workers clone at the same time
    tmp.mkdir()
    ws = workspace_factory(str(feed), extra_env={**git_spy.env(sleep=30), "TMPDIR": str(tmp)})
    # SIGINT as a terminal's foreground process has it: a shell script's background job (and all it starts)
    # inherits SIGINT ignored, and Python then never raises KeyboardInterrupt
    foreground = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
    )
    shard = [sys.executable, "-m", "stages.shard", "--batch-size", "1", "--offset", "0", "--feed", str(feed)]
    proc = subprocess.Popen(
        [sys.executable, "-c", foreground, *shard], cwd=ws.path, env=ws.env, stderr=subprocess.PIPE, text=True
    )
    wait_for(lambda: len(git_spy.clones()) == 2)  # two workers, each in a (slow) clone
    start = time.monotonic()
    proc.send_signal(sig)
    try:
        _, stderr = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        pytest.fail(f"the shard had not stopped 20 s after {sig.name}; the end of its stderr:\n{stderr[-4000:]}")
    assert time.monotonic() - start < 10 and proc.returncode != 0
    assert "killed the running clones" in stderr
    time.sleep(0.5)
    ours = (str(ws.path), f"{tmp}/xgov-clone-")
    leftovers = [
        p.info["cmdline"]
        for p in psutil.process_iter(["cmdline"])
        if any(mark in part for mark in ours for part in p.info["cmdline"] or [])
    ]
    assert leftovers == []
    assert len(git_spy.clones()) == 2  # the other six were never started
