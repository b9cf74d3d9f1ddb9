"""The R2 round trip on a real S3 protocol server (moto on 127.0.0.1): dvc push, git clone + dvc pull."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import Reproduced, Workspace, make_workspace, point_r2_at, write_feed
from tests.fixtures.locals3 import LocalS3
from tests.fixtures.sample import build_corpus, commit, write_files

pytestmark = pytest.mark.slow
SHARDS = {"batch_size": 3, "offsets": [0, 1, 2]}


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".cache" not in p.parts
    }


def outputs(ws: Workspace) -> dict[str, str]:
    found = tree_digest(ws.path / "data")
    found["reports/metrics.json"] = hashlib.md5((ws.path / "reports/metrics.json").read_bytes()).hexdigest()
    return {k: v for k, v in found.items() if not k.endswith(".gitignore")}


def make(ws: Workspace, *args: str, env: dict[str, str] | None = None, check: bool = False):
    import shutil
    import sys

    shutil.copy2(Path(__file__).parents[2] / "Makefile", ws.path / "Makefile")
    venv = str(Path(sys.executable).parents[1])
    return ws.run(
        "make", "--no-print-directory", "-o", f"{venv}/.installed", f"VENV={venv}", *args, env=env, check=check
    )


def three_shards(folder: Path, env: dict[str, str]) -> Workspace:
    ws = make_workspace(folder / "ws", str(write_feed(folder / "feed.json", build_corpus(folder / "corpus", 8))), env)
    ws.set_params(shards=SHARDS)
    ws.dvc("repro")
    return ws


@pytest.fixture
def pushed(tmp_path: Path, reproduced: Reproduced, s3_server: LocalS3):
    """Eight repos in three shards after dvc repro (built once per worker, a pristine copy for each test), pushed
    to a bucket of the test's own."""
    ws = reproduced.workspace("three-shards", three_shards, tmp_path)
    bucket = s3_server.make_bucket(f"r2-{tmp_path.name.lower().replace('_', '-')[:40]}")
    point_r2_at(ws, s3_server, bucket)
    ws.commit("run")
    ws.dvc("push", "-r", "r2")
    feed = ws.path.parent / "feed.json"
    return ws, bucket, json.loads(feed.read_text()), feed, ws.path.parent / "corpus" / "repos"


def test_push_uploads_every_output_and_pull_restores_them(pushed, s3_server: LocalS3, tmp_path: Path) -> None:
    ws, bucket, *_ = pushed
    keys = s3_server.objects(bucket, "dvc/")
    expected = {v for v in outputs(ws).values()}
    stored = {k.split("/")[-2] + k.split("/")[-1] for k in keys if "/md5/" in k and not k.endswith(".dir")}
    assert expected - {outputs(ws)["reports/metrics.json"]} <= stored  # metrics.json lives in git (cache: false)

    clone = Workspace(tmp_path / "clone", ws.env)
    ws.run("git", "clone", "-q", str(ws.path), str(clone.path))
    assert not list((clone.path / "data").rglob("*.txt"))
    clone.dvc("pull", "-r", "r2")
    assert outputs(clone) == outputs(ws)


def test_second_push_uploads_nothing_and_one_change_uploads_one_digest(pushed, s3_server: LocalS3) -> None:
    ws, bucket, entries, feed, repos = pushed
    before = s3_server.objects(bucket, "dvc/")
    out = ws.dvc("repro").stdout
    assert [s for s in ws.ran_stages(out) if s.startswith("shard@")] == []
    push = ws.dvc("push", "-r", "r2")
    assert s3_server.objects(bucket, "dvc/") == before
    assert "Everything is up to date" in push.stdout + push.stderr

    target = entries[2]
    write_files(repos / target["owner"] / target["name"], {"CHANGED.md": "new\n"})
    commit(repos / target["owner"] / target["name"], "change")
    entries[2] = dict(target, pushedAt="2025-02-02T00:00:00Z")
    write_feed(feed, entries)
    ws.dvc("repro")
    ws.commit("one change")
    ws.dvc("push", "-r", "r2")
    new = sorted(set(s3_server.objects(bucket, "dvc/")) - set(before))
    print(f"objects in the remote: first push {len(before)}, no-op push +0, one-change push +{len(new)}")
    client = s3_server.client()
    bodies = {k: client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in new}
    digests = [k for k, b in bodies.items() if b.startswith(b"Repository: ")]
    assert len(digests) == 1 and b"FILE: CHANGED.md" in bodies[digests[0]]
    # the rest: the changed shard's listing and stats, the merged stats and report, the snapshot and manifests, and the
    # dataset's listing and the one bucket file holding the changed repo (the other buckets are byte-identical)
    assert len(new) <= 10, new
    assert sum(b.startswith(b"PAR1") for b in bodies.values()) <= 4  # that bucket, the two stats files, merged stats


def test_missing_credentials_or_endpoint_fail_clearly(pushed, s3_server: LocalS3) -> None:
    ws, bucket, *_ = pushed
    before = outputs(ws)
    no_creds = {
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "R2_ACCESS_KEY_ID": "",
        "R2_SECRET_ACCESS_KEY": "",
    }
    result = make(ws, "push", "REMOTE=r2", env=no_creds)
    assert result.returncode != 0
    assert "R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY" in result.stderr + result.stdout

    ws.dvc("remote", "modify", "r2", "endpointurl", "http://127.0.0.1:9")  # nothing listens on port 9
    result = make(ws, "push", "REMOTE=r2")
    assert result.returncode != 0
    assert "cannot use bucket" in result.stderr and "http://127.0.0.1:9" in result.stderr
    assert s3_server.env["AWS_SECRET_ACCESS_KEY"] not in result.stderr + result.stdout
    assert outputs(ws) == before
    ws.dvc("remote", "modify", "r2", "endpointurl", s3_server.endpoint)
    assert make(ws, "push", "REMOTE=r2").returncode == 0
