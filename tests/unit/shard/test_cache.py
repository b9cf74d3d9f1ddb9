"""The shared digest cache is bound to its writers: entries are signed with a secret the bucket never holds, carry
their repo's ``pushedAt``, and anything else is a named miss. Against moto's S3 server on 127.0.0.1, through the
cache's own S3 store and through real shard runs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import write_feed
from tests.fixtures.dvc_s3 import dvc_project, run_env
from tests.fixtures.locals3 import LocalS3
from tests.fixtures.sample import build_corpus
from xgov_digests.core.params import IngestParams, StorageParams
from xgov_digests.core.repo import Repo
from xgov_digests.core.s3 import S3ConfigError
from xgov_digests.shard.cache import (
    SECRET_ENV,
    CacheSecretError,
    DigestCache,
    Entry,
    Unauthentic,
    _S3Store,
    cache_key,
    cache_secret,
    decode_entry,
    drop,
    drop_named,
    encode_entry,
    open_cache,
)

SECRET = os.environ[SECRET_ENV].encode()  # the test-only secret tests/conftest.py sets
OTHER = b"another-secret-of-another-writer-0123456789"
A = Repo("https://github.com/alphagov/router", "alphagov", "router", "2026-01-02T00:00:00Z")
B = Repo("https://github.com/alphagov/frontend", "alphagov", "frontend", "2026-01-03T00:00:00Z")
REAL = Entry(b"Repository: alphagov/router\nthe real digest\n", "a" * 40, 3, False)
FORGED = Entry(b"Repository: alphagov/router\nplanted\n", "0" * 40, 1, False)


def s3_cache(endpoint: str, bucket: str, secret: bytes | None = SECRET, fp: str = "fp") -> DigestCache:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        **{
            "aws_access_key_id": LocalS3.env["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": LocalS3.env["AWS_SECRET_ACCESS_KEY"],
        },
    )
    url = f"s3://{bucket}/cache"
    return DigestCache(url, fp, _S3Store(url, client), deadline=30, secret=secret)


def plant(cache: DigestCache, repo: Repo, blob: bytes) -> None:
    """What anyone with write access to the bucket can do: every part of the key is public."""
    cache.store.put(cache.name(repo), blob)


def test_a_signed_entry_is_a_hit(proxied, caplog) -> None:
    p, bucket = proxied
    cache = s3_cache(p.endpoint, bucket)
    cache.put(A, REAL)
    assert cache.get(A) == REAL
    blob = cache.store.get(cache.name(A))
    head = json.loads(blob.split(b"\n")[0])
    assert head["pushedAt"] == A.pushed_at and len(head["mac"]) == 64
    assert SECRET not in blob and SECRET.decode() not in caplog.text


@pytest.mark.parametrize(
    "how",
    ["unsigned", "another secret", "mac copied onto other bytes", "mac copied onto another commit", "mac removed"],
)
def test_a_forged_entry_is_a_named_miss(proxied, caplog, how: str) -> None:
    p, bucket = proxied
    cache = s3_cache(p.endpoint, bucket)
    cache.put(A, REAL)
    genuine = json.loads(cache.store.get(cache.name(A)).split(b"\n")[0])
    if how == "unsigned":
        blob = encode_entry(FORGED, A, "fp")
    elif how == "another secret":
        blob = encode_entry(FORGED, A, "fp", OTHER)
    else:
        forged = json.loads(encode_entry(FORGED, A, "fp").split(b"\n")[0])
        if how == "mac copied onto other bytes":
            forged["mac"] = genuine["mac"]
        elif how == "mac copied onto another commit":
            forged = {**genuine, "commit": "0" * 40}
        data = FORGED.data if how != "mac copied onto another commit" else REAL.data
        if how == "mac removed":
            forged = {k: v for k, v in genuine.items() if k != "mac"}
            data = REAL.data
        blob = json.dumps(forged, sort_keys=True).encode() + b"\n" + data
    plant(cache, A, blob)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert cache.get(A) is None
    record = caplog.records[-1]
    assert record.getMessage() == "digest cache entry failed authentication: re-cloning"
    assert record.url == A.key and record.entry == cache.path(A)
    assert "signed" in record.error or "signature" in record.error
    cache.put(A, REAL)  # the fresh digest replaces it
    assert cache.get(A) == REAL


def test_a_rolled_back_entry_is_a_named_miss(proxied, caplog) -> None:
    """An entry genuinely signed for the repo's older pushedAt, copied to the key of its newer one."""
    p, bucket = proxied
    cache = s3_cache(p.endpoint, bucket)
    old = Repo(A.url, A.owner, A.name, "2025-01-01T00:00:00Z")
    cache.put(old, Entry(b"Repository: alphagov/router\nold digest\n", "b" * 40, 1, False))
    plant(cache, A, cache.store.get(cache.name(old)))
    with caplog.at_level(logging.WARNING):
        assert cache.get(A) is None
    assert "rollback" in caplog.records[-1].error and "2025-01-01T00:00:00Z" in caplog.records[-1].error
    with pytest.raises(Unauthentic, match="rollback"):
        decode_entry(cache.store.get(cache.name(A)), A, "fp", SECRET)
    assert cache.get(old) is not None  # under its own key it is still that pushedAt's digest


def test_the_checks_can_fail() -> None:
    """The same checks accept what they should: a genuine entry decodes under its secret, repo and pushedAt."""
    blob = encode_entry(REAL, A, "fp", SECRET)
    assert decode_entry(blob, A, "fp", SECRET) == REAL
    with pytest.raises(Unauthentic):
        decode_entry(blob, A, "fp", OTHER)
    with pytest.raises(Unauthentic):
        decode_entry(blob, Repo(A.url, A.owner, A.name, None), "fp", SECRET)


def test_a_403_on_one_key_is_that_keys_miss(proxied, caplog) -> None:
    """AWS answers 403 for a missing key to a token without s3:ListBucket: one entry, not the whole cache."""
    p, bucket = proxied
    cache = s3_cache(p.endpoint, bucket)
    cache.put(A, REAL)
    cache.put(B, REAL)
    p.deny_get = {f"/{bucket}/cache/{cache.name(A)}"}
    with caplog.at_level(logging.WARNING):
        assert cache.get(A) is None
    assert not cache.unavailable and "AccessDenied" in caplog.records[-1].error
    assert caplog.records[-1].url == A.key
    assert cache.get(B) == REAL  # the rest of the cache still answers
    p.deny = f"/{bucket}/"  # a token that may not write at all: that still concerns the whole cache
    cache.put(A, REAL)
    assert cache.unavailable


def test_the_shared_cache_refuses_to_start_without_its_secret(tmp_path: Path, s3_server: LocalS3, monkeypatch) -> None:
    project = dvc_project(tmp_path / "p", s3_server.endpoint, "bkt")
    monkeypatch.chdir(project)
    for k, v in s3_server.env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv(SECRET_ENV)
    with pytest.raises(S3ConfigError, match=f"set {SECRET_ENV} \\(at least 32 characters"):
        open_cache(IngestParams(cache="s3://bkt/cache"), StorageParams())
    local = open_cache(IngestParams(cache=str(tmp_path / "local")), StorageParams())
    assert local is not None and local.secret is None  # a local cache needs none
    monkeypatch.setenv(SECRET_ENV, "short")
    with pytest.raises(S3ConfigError, match="5 characters, fewer than 32"):
        open_cache(IngestParams(cache="s3://bkt/cache"), StorageParams())
    with pytest.raises(CacheSecretError) as info:
        cache_secret(True, {SECRET_ENV: "short"})
    assert "short" not in str(info.value)


def test_drop_one_repos_entry_or_the_whole_cache(proxied, tmp_path: Path, monkeypatch) -> None:
    p, bucket = proxied
    cache = s3_cache(p.endpoint, bucket)
    cache.put(A, REAL)
    cache.put(B, REAL)
    cache.store.put("notes.txt", b"not an entry")  # something else under the prefix stays
    assert cache.store.delete(cache.name(A)) and cache.get(A) is None and cache.get(B) == REAL
    assert cache.store.delete_all() == 1 and cache.get(B) is None
    assert cache.store.get("notes.txt") == b"not an entry"

    # the library calls, on a local cache, by owner/name (any case) from the manifests
    local = tmp_path / "local"
    settings = IngestParams(cache=str(local))
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "shard-0.json").write_text(json.dumps({"repos": [A.manifest_entry(), B.manifest_entry()]}))
    c = open_cache(settings, StorageParams())
    c.put(A, REAL)
    c.put(B, REAL)
    assert drop_named(settings, StorageParams(), ["AlphaGov/Router"], manifests) == 1
    assert c.get(A) is None and c.get(B) == REAL
    with pytest.raises(ValueError, match="alphagov/nope"):
        drop_named(settings, StorageParams(), ["alphagov/nope"], manifests)
    assert drop(settings, StorageParams(), None) == 1 and c.get(B) is None


# --- through real shard runs -----------------------------------------------------------------------------------


def shard(project: Path, feed: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stages.shard", "--batch-size", "1", "--offset", "0", "--feed", str(feed)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def statuses(project: Path) -> dict[str, str]:
    frame = pd.read_parquet(project / "data/stats/shard-0.parquet")
    return dict(zip(frame["name"], frame["status"], strict=True))


@pytest.mark.slow
def test_shards_reject_forged_and_rolled_back_entries(tmp_path: Path, s3_server: LocalS3) -> None:
    bucket = s3_server.make_bucket(f"ct-{uuid.uuid4().hex[:12]}")
    entries = build_corpus(tmp_path / "corpus", 3)
    feed = write_feed(tmp_path / "feed.json", entries)
    project = dvc_project(tmp_path / "p", s3_server.endpoint, bucket)
    params = project / "params.yaml"
    text = params.read_text().replace("cache: .cache/digests", f"cache: s3://{bucket}/cache")
    text = text.replace("allow_file_urls: false", "allow_file_urls: true")
    params.write_text(text.replace("workers: 8 ", "workers: 2 "))
    env = run_env(**s3_server.env)

    out = shard(project, feed, {k: v for k, v in env.items() if k != SECRET_ENV})
    assert out.returncode == 2 and f"set {SECRET_ENV}" in out.stderr  # refused, nothing cloned
    assert not (project / "data/stats/shard-0.parquet").exists()

    assert shard(project, feed, env).returncode == 0
    assert set(statuses(project).values()) == {"ok"}
    client = s3_server.client()
    keys = list(s3_server.objects(bucket, "cache/"))
    heads = {k: json.loads(client.get_object(Bucket=bucket, Key=k)["Body"].read().split(b"\n")[0]) for k in keys}
    by_name = {h["name"]: (k, h) for k, h in heads.items()}
    assert len(by_name) == 3

    # 1. a forged entry for project-000 (what the issue planted as alphagov/router.txt), an entry written under
    #    another secret for project-001: both re-cloned, each named; project-002 stays a hit
    for name, secret in (("project-000", None), ("project-001", OTHER)):
        key, head = by_name[name]
        repo = Repo(head["url"], head["owner"], head["name"], head["pushedAt"])
        forged = encode_entry(Entry(b"Repository: planted\n", "0" * 40, 1, False), repo, head["fingerprint"], secret)
        client.put_object(Bucket=bucket, Key=key, Body=forged)
    out = shard(project, feed, env)
    assert out.returncode == 0, out.stderr
    assert statuses(project) == {"project-000": "ok", "project-001": "ok", "project-002": "cached"}
    assert out.stderr.count("failed authentication") == 2
    for name in ("project-000", "project-001"):
        digest = (project / "data/summaries/shard-0" / entries[int(name[-1])]["owner"] / f"{name}.txt").read_text()
        assert "planted" not in digest and "0" * 40 not in digest
    assert os.environ[SECRET_ENV] not in out.stderr + out.stdout

    # 2. project-002 is pushed again: its old (genuine) entry copied to the new key is a rollback, re-cloned
    key, head = by_name["project-002"]
    entries[2] = dict(entries[2], pushedAt="2025-06-01T00:00:00Z")
    write_feed(feed, entries)
    newer = Repo(head["url"], head["owner"], head["name"], "2025-06-01T00:00:00Z")
    new_key = cache_key(newer, head["fingerprint"])
    client.copy_object(
        Bucket=bucket, Key=f"cache/{new_key[:2]}/{new_key}.digest", CopySource={"Bucket": bucket, "Key": key}
    )
    out = shard(project, feed, env)
    assert out.returncode == 0, out.stderr
    assert statuses(project)["project-002"] == "ok" and "rollback" in out.stderr


@pytest.mark.slow
def test_a_hit_without_its_token_count_is_counted_once_and_the_count_kept(tmp_path: Path) -> None:
    """An entry written before entries kept their count (or with another encoding's only): the hit is counted, and
    the count is written back, so the nights after read it instead of counting every cached digest again."""
    from dataclasses import replace

    from xgov_digests.core.params import load_params
    from xgov_digests.shard.cache import fingerprint

    entries = build_corpus(tmp_path / "corpus", 2)
    feed = write_feed(tmp_path / "feed.json", entries)
    project = tmp_path / "p"
    project.mkdir()
    text = (Path(__file__).resolve().parents[3] / "params.yaml").read_text()
    (project / "params.yaml").write_text(text.replace("allow_file_urls: false", "allow_file_urls: true"))
    env = run_env()
    assert shard(project, feed, env).returncode == 0
    first = pd.read_parquet(project / "data/stats/shard-0.parquet")
    counted = dict(zip(first["name"], first["tokens"], strict=True))
    assert all(counted.values())

    fp = fingerprint(load_params(project / "params.yaml").ingest)
    files = sorted((project / ".cache/digests").rglob("*.digest"))
    assert len(files) == 2
    for path in files:  # each entry as an older writer left it: no count, or only another encoding's
        head = json.loads(path.read_bytes().split(b"\n")[0])
        repo = Repo(head["url"], head["owner"], head["name"], head["pushedAt"])
        entry = decode_entry(path.read_bytes(), repo, fp, SECRET)  # signed: the tests' environment sets the secret
        older = {} if head["name"].endswith("0") else {"cl100k_base": 5}
        path.write_bytes(encode_entry(replace(entry, tokens=older), repo, fp, SECRET))

    assert shard(project, feed, env).returncode == 0
    frame = pd.read_parquet(project / "data/stats/shard-0.parquet")
    assert set(frame["status"]) == {"cached"}
    assert dict(zip(frame["name"], frame["tokens"], strict=True)) == counted  # counted again, the same
    for path in files:
        head = json.loads(path.read_bytes().split(b"\n")[0])
        repo = Repo(head["url"], head["owner"], head["name"], head["pushedAt"])
        kept = decode_entry(path.read_bytes(), repo, fp, SECRET).tokens
        assert kept["o200k_base"] == counted[head["name"]]  # written back
        assert kept.get("cl100k_base") == (None if head["name"].endswith("0") else 5)  # the other count kept
