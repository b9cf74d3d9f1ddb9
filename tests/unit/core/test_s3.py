"""S3 access shared by the digest cache, publish and the remote checks: DVC's credential precedence, the write
probe, the deadline against an endpoint that never answers, and cache entries bound to their repo."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import GitSpy, write_feed
from tests.fixtures.dvc_s3 import CLEAN_ENV, dvc_project, run_env
from tests.fixtures.locals3 import LocalS3
from tests.fixtures.s3proxy import S3Proxy
from tests.fixtures.sample import build_corpus
from tests.fixtures.silent_server import SilentServer
from xgov_digests.core.s3 import S3ConfigError, open_remote
from xgov_digests.feed.snapshot import Repo
from xgov_digests.shard.cache import DigestCache, Entry, decode_entry, encode_entry

ROOT = Path(__file__).resolve().parents[3]


def set_timeout(path: Path, seconds: int) -> None:
    params = path / "params.yaml"
    params.write_text(params.read_text().replace("timeout: 10 ", f"timeout: {seconds} "))


# --- credentials ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_credentials_follow_dvc_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dvc.repo import Repo as DvcRepo

    project = dvc_project(tmp_path / "p", "http://127.0.0.1:9", "bkt")
    monkeypatch.chdir(project)
    for k, v in CLEAN_ENV.items():
        monkeypatch.setenv(k, v)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)

    def dvc_key() -> str | None:  # what dvc-s3 hands to s3fs for this remote
        with DvcRepo(str(project)) as repo:
            return repo.cloud.get_remote("r2").fs.fs_args.get("key")

    monkeypatch.setenv("R2_ACCESS_KEY_ID", "r2-id")
    monkeypatch.setenv("R2_SECRET_ACCESS_KEY", "r2-secret")
    assert open_remote("r2").credentials.source == "R2_ACCESS_KEY_ID/R2_SECRET_ACCESS_KEY (environment)"

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    creds = open_remote("r2").credentials
    assert (creds.key, creds.source) == ("env-id", "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (environment)")
    assert dvc_key() is None  # DVC leaves it to botocore, which reads the same variables

    subprocess.run(
        [sys.executable, "-m", "dvc", "remote", "modify", "--local", "r2", "access_key_id", "local-id"],
        cwd=project,
        check=True,
    )
    subprocess.run(
        [sys.executable, "-m", "dvc", "remote", "modify", "--local", "r2", "secret_access_key", "local-s"],
        cwd=project,
        check=True,
    )
    creds = open_remote("r2").credentials
    assert creds.key == "local-id" == dvc_key()  # .dvc/config.local beats AWS_* in DVC, and here
    assert "config.local" in creds.source and "local-s" not in creds.source

    (project / ".dvc" / "config.local").unlink()
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var)
    with pytest.raises(S3ConfigError, match="R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY"):
        open_remote("r2")


def check(project: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    result = subprocess.run(
        [Path(sys.executable).with_name("xgov-digests"), "check-remote", *args],
        cwd=project,
        capture_output=True,
        text=True,
        env=run_env(AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s3cr3t-x", **env),
        timeout=120,
    )
    assert "s3cr3t-x" not in result.stdout + result.stderr
    return result, time.monotonic() - start


@pytest.mark.slow
def test_push_check_probes_write_access(tmp_path: Path, proxied: tuple[S3Proxy, str], s3_server: LocalS3) -> None:
    proxy, bucket = proxied
    project = dvc_project(tmp_path / "p", proxy.endpoint, bucket)
    ok, _ = check(project, "--write", "-r", "r2")
    assert ok.returncode == 0 and "readable and writable" in ok.stdout
    assert "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (environment)" in ok.stdout
    assert [m for m in (r.method for r in proxy.take()) if m in ("PUT", "DELETE")] == ["PUT", "DELETE"]
    assert s3_server.objects(bucket) == {}  # the probe is gone

    proxy.deny = f"/{bucket}/"  # a token that may read but not write
    read_only, _ = check(project, "--write", "-r", "r2")
    assert read_only.returncode == 2 and "cannot write" in read_only.stderr and "AccessDenied" in read_only.stderr
    pull, _ = check(project, "--access", "-r", "r2")  # before a pull: reading is enough, it says so
    assert pull.returncode == 0 and "write access not checked" in pull.stdout


@pytest.mark.slow
def test_check_against_a_hanging_endpoint_fails_within_its_deadline(tmp_path: Path) -> None:
    silent = SilentServer()
    try:
        project = dvc_project(tmp_path / "p", silent.endpoint, "bkt")
        set_timeout(project, 2)
        result, took = check(project, "--write", "-r", "r2")
    finally:
        silent.stop()
    assert result.returncode == 2 and "cannot use bucket 'bkt'" in result.stderr and "timeout" in result.stderr
    assert silent.connections == 3 and took < 30, took


# --- the digest cache ----------------------------------------------------------------------------------------


def test_cache_entry_under_another_key_or_of_wrong_shape_is_a_miss_then_replaced(tmp_path: Path, caplog) -> None:
    a = Repo("https://github.com/org1/project-001", "org1", "project-001", "2026-01-01T00:00:00Z")
    b = Repo("https://github.com/org2/project-002", "org2", "project-002", "2026-01-01T00:00:00Z")
    cache = DigestCache(str(tmp_path / "cache"), "fp")
    cache.put(a, Entry(b"Repository: org1/project-001\n", "c1", 1, False))
    path_a, path_b = Path(cache.path(a)), Path(cache.path(b))
    path_b.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(path_a, path_b)  # a's entry at b's key: its checksum holds

    assert cache.get(b) is None
    assert "entry belongs to org1/project-001" in caplog.records[-1].error
    cache.put(b, Entry(b"Repository: org2/project-002\n", "c2", 1, False))  # the fresh digest replaces it
    assert cache.get(b) == Entry(b"Repository: org2/project-002\n", "c2", 1, False)

    for head in (b"[1,2]", b"null", b'"text"', b'{"v": 2, "size": "3"}'):
        path_a.write_bytes(head + b"\nabc")
        caplog.clear()
        assert cache.get(a) is None and "corrupt or misplaced digest cache entry" in caplog.text, head
        assert caplog.records[-1].url == a.key
    cache.put(a, Entry(b"fresh", "c3", 2, True))
    assert cache.get(a) == Entry(b"fresh", "c3", 2, True)
    assert DigestCache(str(tmp_path / "cache"), "other settings").get(a) is None  # fingerprint is checked too
    blob = encode_entry(Entry(b"x", "c", 1, False), a, "fp")
    assert json.loads(blob.split(b"\n")[0])["url"] == a.url
    with pytest.raises(ValueError, match="belongs to"):
        decode_entry(blob, b, "fp")


def shard_project(tmp_path: Path, endpoint: str, repos: int, timeout: int = 2) -> tuple[Path, Path]:
    feed = write_feed(tmp_path / "feed.json", build_corpus(tmp_path / "corpus", repos))
    project = dvc_project(tmp_path / "p", endpoint, "bkt")
    params = project / "params.yaml"
    text = params.read_text().replace("cache: .cache/digests", "cache: s3://bkt/cache")
    text = text.replace("allow_file_urls: false", "allow_file_urls: true")
    params.write_text(text.replace("workers: 8 ", "workers: 2 "))
    set_timeout(project, timeout)
    return project, feed


@pytest.mark.slow
def test_shard_with_a_hanging_cache_clones_as_if_missed(tmp_path: Path) -> None:
    silent = SilentServer()
    try:
        project, feed = shard_project(tmp_path, silent.endpoint, 4)
        start = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "stages.shard", "--batch-size", "1", "--offset", "0", "--feed", str(feed)],
            cwd=project,
            env=run_env(AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s"),
            capture_output=True,
            text=True,
            timeout=300,
        )
        took = time.monotonic() - start
    finally:
        silent.stop()
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("digest cache unavailable") == 1 and "4 ok" in result.stderr
    assert took < 60, took


def test_shard_waiting_on_a_hanging_cache_stops_on_sigterm_within_seconds(tmp_path: Path) -> None:
    silent = SilentServer()
    try:
        project, feed = shard_project(tmp_path, silent.endpoint, 4, timeout=30)  # one request alone would take 90 s
        spy = GitSpy(tmp_path)
        proc = subprocess.Popen(
            [sys.executable, "-m", "stages.shard", "--batch-size", "1", "--offset", "0", "--feed", str(feed)],
            cwd=project,
            stderr=subprocess.PIPE,
            text=True,
            env=run_env(AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s", **spy.env()),
        )
        deadline = time.monotonic() + 60
        while silent.connections < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert silent.connections >= 2, "the shard never reached the cache"  # both workers wait on the cache
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
        took = time.monotonic() - start
    finally:
        silent.stop()
    assert proc.returncode != 0 and took < 5, (took, stderr[-2000:])
    assert spy.clones() == []  # it stopped while waiting on the cache: nothing was cloned after SIGTERM
