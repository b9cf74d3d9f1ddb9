"""``python -m stages.publish`` against moto's S3 server on 127.0.0.1, the stand-in for Cloudflare R2.

The publisher talks to moto through a small recording proxy (also on 127.0.0.1) that counts every request and can
fail or hold chosen PUTs: that is how the tests see exactly what was uploaded, in which order, and how a publish is
cut off half-way. The tests themselves read the bucket with boto3, straight from moto.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from configobj import ConfigObj
from ruamel.yaml import YAML

from stages.locals3 import LocalS3
from stages.stats import Row, to_frame
from tests.s3proxy import Request, S3Proxy

ROOT = Path(__file__).resolve().parents[1]
KEY_ID = "testing-key-id"
SECRET = f"testing-secret-{uuid.uuid4().hex}"  # must never appear in the publisher's output
SUMMARY_RE = re.compile(
    r"^publish: uploaded (?P<uploaded>\d+), unchanged (?P<unchanged>\d+), kept (?P<kept>\d+), "
    r"pruned (?P<pruned>\d+), failed (?P<failed>\d+), bytes (?P<bytes>\d+), seconds [0-9.]+, "
    r"index (?P<index>written|unchanged)",
    re.M,
)


@dataclass
class S3:
    server: LocalS3  # moto itself: the tests read the bucket here
    proxy: S3Proxy  # the publisher's endpoint

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def client(self):
        return self.server.client()


@pytest.fixture(scope="session")
def moto_s3(s3_server: LocalS3) -> Iterator[S3]:
    """The session's moto server (tests/conftest.py), behind a recording proxy."""
    proxy = S3Proxy(s3_server.server.get_host_and_port())
    yield S3(s3_server, proxy)
    proxy.stop()


# --- a workspace with synthetic digests ----------------------------------------------------------------------


@dataclass
class Repo:
    owner: str
    name: str
    offset: int
    status: str = "ok"
    version: int = 1

    @property
    def url(self) -> str:
        return f"https://github.com/{self.owner}/{self.name}"

    @property
    def key(self) -> str:
        return f"summaries/{self.owner}/{self.name}.txt"

    @property
    def commit(self) -> str:
        return hashlib.sha1(f"{self.owner}/{self.name}@{self.version}".encode()).hexdigest()

    @property
    def pushed_at(self) -> str:
        return f"2026-11-{1 + self.version % 28:02d}T10:00:00Z"

    def text(self) -> str:
        body = "".join(f"line {i} of {self.owner}/{self.name} v{self.version}\n" for i in range(40 + self.version))
        return (
            f"Repository: {self.owner}/{self.name}\nURL: {self.url}\nCommit: {self.commit}\n"
            f"Pushed at: {self.pushed_at}\nFiles analyzed: 1\n\n"
            f"================================================\nFILE: README.md\n"
            f"================================================\n{body}"
        )


class Site:
    """A workspace folder (``.dvc/config``, ``params.yaml``, ``data/``) whose 'r2' remote is the proxy."""

    BATCH = 3

    def __init__(self, path: Path, s3: S3, bucket: str) -> None:
        self.path, self.s3, self.bucket = path, s3, bucket
        self.repos: dict[str, Repo] = {}
        (path / ".dvc").mkdir(parents=True)
        shutil.copy(ROOT / ".dvc" / "config", path / ".dvc" / "config")
        config = ConfigObj(str(path / ".dvc" / "config"))
        config['remote "r2"']["url"] = f"s3://{bucket}/dvc"
        config['remote "r2"']["endpointurl"] = s3.proxy.endpoint
        config.write()
        shutil.copy(ROOT / "params.yaml", path / "params.yaml")
        self.set_publish(bucket="", prefix="summaries")
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "R2_"))}
        self.env = {k: v for k, v in inherited.items() if "proxy" not in k.lower()}
        self.env.update(
            AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET, AWS_CONFIG_FILE=str(path / "no-aws-config"),
            AWS_SHARED_CREDENTIALS_FILE=str(path / "no-aws-credentials"), AWS_EC2_METADATA_DISABLED="true",
            NO_PROXY="*", PYTHONPATH=str(ROOT), HOME=str(path),
        )  # fmt: skip

    def set_publish(self, **values: str) -> None:
        yaml = YAML()
        data = yaml.load((self.path / "params.yaml").read_text())
        data.setdefault("publish", {}).update(values)
        with (self.path / "params.yaml").open("w") as fh:
            yaml.dump(data, fh)

    # the snapshot
    def add(self, n: int, owner: str = "org") -> list[Repo]:
        start = len(self.repos)
        added = [Repo(f"{owner}{i % 4}", f"project-{i:03d}", i % self.BATCH) for i in range(start, start + n)]
        self.repos.update({r.key: r for r in added})
        return added

    def digest_path(self, repo: Repo) -> Path:
        return self.path / "data" / "summaries" / f"shard-{repo.offset}" / repo.owner / f"{repo.name}.txt"

    def write(self) -> None:
        """Write the digests and data/stats.parquet as the shards and aggregate would (no file for failed repos)."""
        shutil.rmtree(self.path / "data", ignore_errors=True)
        rows = []
        for r in self.repos.values():
            row = Row(r.url, r.owner, r.name, r.offset, self.BATCH, r.pushed_at, status=r.status)
            if r.status in ("ok", "cached"):
                data = r.text().encode()
                self.digest_path(r).parent.mkdir(parents=True, exist_ok=True)
                self.digest_path(r).write_bytes(data)
                row.commit, row.files, row.digest_bytes = r.commit, 1, len(data)
            else:
                row.error = "clone failed: HTTP 500" if r.status == "failed" else "empty repository"
            rows.append(row)
        (self.path / "data").mkdir(exist_ok=True)
        to_frame(rows).to_parquet(self.path / "data" / "stats.parquet", index=False)

    def change(self, *repos: Repo) -> None:
        for r in repos:
            r.version += 1

    # running the publisher
    def publish(self, *args: str, env: dict[str, str] | None = None, expect: int = 0) -> subprocess.CompletedProcess:
        self.s3.proxy.take()
        result = subprocess.run(
            [sys.executable, "-m", "stages.publish", *args], cwd=self.path, env={**self.env, **(env or {})},
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert SECRET not in result.stdout + result.stderr, "the secret key was printed"
        assert result.returncode == expect, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result

    def start(self, *args: str) -> subprocess.Popen:
        self.s3.proxy.take()
        return subprocess.Popen(
            [sys.executable, "-m", "stages.publish", *args], cwd=self.path, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    # the bucket, read straight from moto
    def listing(self, bucket: str | None = None) -> dict[str, tuple[str, object]]:
        """key -> (ETag, LastModified) of every object in the bucket."""
        out = {}
        pages = self.s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket or self.bucket)
        for page in pages:
            out.update({o["Key"]: (o["ETag"], o["LastModified"]) for o in page.get("Contents", [])})
        return out

    def state(self, bucket: str | None = None) -> dict[str, tuple[bytes, str, dict[str, str]]]:
        """key -> (body, Content-Type, metadata) of every object in the bucket."""
        client, out = self.s3.client(), {}
        for key in self.listing(bucket):
            obj = client.get_object(Bucket=bucket or self.bucket, Key=key)
            out[key] = (obj["Body"].read(), obj["ContentType"], obj["Metadata"])
        return out

    def index(self, bucket: str | None = None) -> dict[str, dict]:
        obj = self.s3.client().get_object(Bucket=bucket or self.bucket, Key="summaries/_index.json")
        return json.loads(obj["Body"].read())


def summary(result: subprocess.CompletedProcess) -> dict[str, str]:
    match = SUMMARY_RE.search(result.stdout)
    assert match, f"no summary line in:\n{result.stdout}\n{result.stderr}"
    return match.groupdict()


def puts(requests: list[Request], bucket: str) -> list[str]:
    """Keys PUT, in order."""
    return [r.path.removeprefix(f"/{bucket}/") for r in requests if r.method == "PUT"]


def writes(requests: list[Request]) -> list[Request]:
    return [r for r in requests if r.method in ("PUT", "POST", "DELETE")]


@pytest.fixture
def site(moto_s3: S3, tmp_path: Path) -> Iterator[Site]:
    bucket = f"pub-{uuid.uuid4().hex[:12]}"
    moto_s3.client().create_bucket(Bucket=bucket)
    moto_s3.proxy.reset()
    yield Site(tmp_path / "ws", moto_s3, bucket)
    moto_s3.proxy.reset()


# --- the tests -----------------------------------------------------------------------------------------------


def test_first_publish_uploads_every_digest_with_metadata(site: Site) -> None:
    repos = site.add(12)
    site.write()
    result = site.publish()
    assert summary(result) == {
        "uploaded": "12", "unchanged": "0", "kept": "0", "pruned": "0", "failed": "0",
        "bytes": str(sum(len(r.text().encode()) for r in repos)), "index": "written",
    }  # fmt: skip
    assert f"s3://{site.bucket}/summaries" in result.stdout  # publish.bucket empty: the DVC remote's bucket
    client = site.s3.client()
    for r in repos:
        head = client.head_object(Bucket=site.bucket, Key=r.key)
        body = r.text().encode()
        assert head["ContentType"] == "text/plain; charset=utf-8"
        assert head["Metadata"] == {
            "url": r.url, "pushed-at": r.pushed_at, "commit": r.commit, "sha256": hashlib.sha256(body).hexdigest()
        }  # fmt: skip
        assert client.get_object(Bucket=site.bucket, Key=r.key)["Body"].read() == body
    assert site.index() == {
        r.key: {"sha256": hashlib.sha256(r.text().encode()).hexdigest(), "commit": r.commit,
                "pushedAt": r.pushed_at, "url": r.url, "bytes": len(r.text().encode())}
        for r in repos
    }  # fmt: skip
    assert set(site.listing()) == {r.key for r in repos} | {"summaries/_index.json"}
    requests = site.s3.proxy.take()
    assert not [r for r in requests if r.method == "HEAD"], "no per-object HEAD requests"
    keys = puts(requests, site.bucket)
    assert sorted(keys[:-1]) == sorted(r.key for r in repos) and keys[-1] == "summaries/_index.json"


def test_second_publish_uploads_nothing_and_one_change_uploads_one(site: Site) -> None:
    repos = site.add(20)
    site.write()
    site.publish()
    before = site.listing()

    again = site.publish()
    assert summary(again)["uploaded"] == "0" and summary(again)["unchanged"] == "20"
    assert summary(again)["index"] == "unchanged"
    requests = site.s3.proxy.take()
    assert writes(requests) == [] and not [r for r in requests if r.method == "HEAD"]
    assert site.listing() == before

    changed = repos[7]
    site.change(changed)
    site.write()
    result = site.publish()
    s = summary(result)
    assert (s["uploaded"], s["unchanged"], s["index"]) == ("1", "19", "written")
    assert s["bytes"] == str(len(changed.text().encode()))
    assert puts(site.s3.proxy.take(), site.bucket) == [changed.key, "summaries/_index.json"]
    after = site.listing()
    moved = {k for k in after if after[k] != before[k]}
    assert moved == {changed.key, "summaries/_index.json"}  # ETag and LastModified of the rest untouched
    head = site.s3.client().head_object(Bucket=site.bucket, Key=changed.key)
    assert head["Metadata"]["commit"] == changed.commit and head["Metadata"]["pushed-at"] == changed.pushed_at
    assert site.index()[changed.key]["sha256"] == hashlib.sha256(changed.text().encode()).hexdigest()


def test_prune_removes_only_dropped_repos(site: Site) -> None:
    repos = site.add(10)
    site.write()
    site.publish()
    client = site.s3.client()
    client.put_object(Bucket=site.bucket, Key="dvc/files/md5/ab/cdef0123", Body=b"dvc cache")  # the DVC remote
    client.put_object(Bucket=site.bucket, Key="summaries/README.md", Body=b"not a digest")
    dropped = repos[3]
    del site.repos[dropped.key]
    site.write()

    kept = site.publish()  # without --prune nothing is deleted, and the count is printed
    assert "1 object(s) of repos no longer in the snapshot kept (--prune deletes them)" in kept.stdout
    assert summary(kept)["pruned"] == "0" and dropped.key in site.listing() and dropped.key in site.index()
    before = site.listing()

    pruned = site.publish("--prune")
    assert "publish: 1 object(s) of repos no longer in the snapshot to prune" in pruned.stdout
    assert summary(pruned)["pruned"] == "1" and summary(pruned)["uploaded"] == "0"
    after = site.listing()
    assert set(before) - set(after) == {dropped.key}
    assert {k: v for k, v in before.items() if k not in (dropped.key, "summaries/_index.json")} == {
        k: v for k, v in after.items() if k != "summaries/_index.json"
    }
    assert set(site.index()) == {r.key for r in repos} - {dropped.key}
    requests = site.s3.proxy.take()
    assert [(r.method, r.query.startswith("delete")) for r in writes(requests)] == [("PUT", False), ("POST", True)]
    assert puts(requests, site.bucket) == ["summaries/_index.json"]  # the index before the delete

    assert summary(site.publish("--prune"))["pruned"] == "0"  # nothing left to prune
    assert writes(site.s3.proxy.take()) == []


def test_dry_run_changes_nothing(site: Site) -> None:
    repos = site.add(8)
    site.write()
    site.publish()
    before = site.state()
    site.change(repos[1])
    del site.repos[repos[2].key]
    added = site.add(1, owner="new")[0]
    site.write()

    result = site.publish("--dry-run", "--prune")
    assert f"would upload {repos[1].key} (changed" in result.stdout
    assert f"would upload {added.key} (new" in result.stdout
    assert f"would delete {repos[2].key}" in result.stdout
    assert "would write summaries/_index.json" in result.stdout
    assert "would upload 2 (1 new)" in result.stdout and "would prune 1" in result.stdout
    assert writes(site.s3.proxy.take()) == []
    assert site.state() == before

    assert summary(site.publish("--prune"))["uploaded"] == "2"  # and the real run does what the dry run said


def test_failed_repo_keeps_its_object_and_entry(site: Site) -> None:
    repos = site.add(6)
    site.write()
    site.publish()
    before, index_before = site.listing(), site.index()
    failing, emptied = repos[4], repos[1]
    failing.status = "failed"  # tonight's clone failed: no digest file, a failed row
    emptied.status = "empty"  # no digest either: what was published stays too
    site.write()
    assert not site.digest_path(failing).exists() and not site.digest_path(emptied).exists()

    result = site.publish("--prune")
    s = summary(result)
    assert (s["uploaded"], s["unchanged"], s["kept"], s["pruned"]) == ("0", "4", "2", "0")
    assert site.listing() == before
    assert site.index() == index_before
    assert writes(site.s3.proxy.take()) == []

    failing.status, failing.version, emptied.status = "ok", 2, "ok"  # the next night: a new commit, and as before
    site.write()
    assert summary(site.publish())["uploaded"] == "1"
    assert puts(site.s3.proxy.take(), site.bucket) == [failing.key, "summaries/_index.json"]


def test_failed_upload_is_named_and_retried_next_time(site: Site) -> None:
    repos = site.add(6)
    site.write()
    site.publish()
    index_before = site.index()
    bad, good = repos[2], repos[5]
    site.change(bad, good)
    site.write()
    site.s3.proxy.fail = {f"/{site.bucket}/{bad.key}"}

    result = site.publish(env={"AWS_MAX_ATTEMPTS": "2"}, expect=1)
    s = summary(result)
    assert (s["uploaded"], s["failed"], s["index"]) == ("1", "1", "written")
    assert bad.key in result.stderr and "failed after retries" in result.stderr
    keys = puts(site.s3.proxy.take(), site.bucket)
    assert keys.count(bad.key) == 2  # botocore retried the 500 once (AWS_MAX_ATTEMPTS=2)
    index = site.index()
    assert index[bad.key] == index_before[bad.key]  # the old object is still there, so is its entry
    assert index[good.key]["commit"] == good.commit

    site.s3.proxy.fail = set()
    retry = site.publish()
    assert summary(retry)["uploaded"] == "1"
    assert puts(site.s3.proxy.take(), site.bucket) == [bad.key, "summaries/_index.json"]
    assert site.index()[bad.key]["commit"] == bad.commit


def test_killed_publish_converges_to_a_clean_publish(site: Site) -> None:
    repos = site.add(40)
    site.write()
    site.publish()
    index_before = site.index()
    site.change(*repos[:30])
    del site.repos[repos[35].key]
    site.write()

    proxy = site.s3.proxy
    proxy.hold_after = 10  # ten PUTs reach the bucket, the next ones hang: then the publisher is killed
    proc = site.start("--jobs", "4", "--prune")
    deadline = time.monotonic() + 60
    while proxy.held == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proxy.held > 0, f"the publish never reached the hold point:\n{proc.communicate()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    deadline = time.monotonic() + 30
    while proxy.forwarded_puts < 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proxy.forwarded_puts == 10
    state = site.state()
    new_bodies = {r.key for r in repos[:30] if state[r.key][0] == r.text().encode()}
    assert len(new_bodies) == 10  # half-way: ten new objects …
    assert site.index() == index_before  # … and the old index, which still names only complete objects
    proxy.reset()

    resumed = site.publish("--prune")
    assert summary(resumed)["pruned"] == "1"
    second = f"pub-{uuid.uuid4().hex[:12]}"
    site.s3.client().create_bucket(Bucket=second)
    site.set_publish(bucket=second)
    clean = site.publish()
    assert summary(clean)["uploaded"] == str(len(site.repos))
    assert site.state() == site.state(second)
    assert site.index() == site.index(second)


def test_missing_credentials_exit_2_naming_the_variables(site: Site) -> None:
    site.add(2)
    site.write()
    env = {k: v for k, v in site.env.items() if not k.startswith(("AWS_ACCESS", "AWS_SECRET"))}
    result = subprocess.run(
        [sys.executable, "-m", "stages.publish"], cwd=site.path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr
    for var in ("R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert var in result.stderr
    assert "Traceback" not in result.stderr
    assert site.s3.proxy.take() == []  # nothing was sent
    assert site.listing() == {}


def test_missing_digest_refuses_to_publish(site: Site) -> None:
    repos = site.add(3)
    site.write()
    site.digest_path(repos[1]).unlink()  # e.g. a workspace without 'dvc pull'
    result = site.publish(expect=2)
    assert "dvc pull" in result.stderr and str(Path("shard-1")) in result.stderr
    assert writes(site.s3.proxy.take()) == [] and site.listing() == {}


def test_prefix_inside_the_dvc_remote_is_refused(site: Site) -> None:
    site.add(2)
    site.write()
    site.set_publish(prefix="dvc/summaries")
    result = site.publish("--prune", expect=2)
    assert "overlaps the DVC remote" in result.stderr
    assert site.s3.proxy.take() == []


def test_unknown_bucket_is_a_clear_error(site: Site) -> None:
    site.add(2)
    site.write()
    site.set_publish(bucket=f"missing-{uuid.uuid4().hex[:8]}")
    result = site.publish(expect=2)
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr
    assert writes(site.s3.proxy.take()) == []
