"""Fixtures the end-to-end tests of several verbs share (the root conftest's are available too)."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_workspace, point_r2_at, write_feed
from tests.fixtures.locals3 import LocalS3
from tests.fixtures.publish_site import S3, Site
from tests.fixtures.s3proxy import S3Proxy
from tests.fixtures.sample import build_corpus
from tests.fixtures.scaleout import REPOS, SHARDS, machine
from tests.fixtures.workspace import ROOT


@pytest.fixture
def three_machines(tmp_path: Path, s3_server: LocalS3):
    entries = build_corpus(tmp_path / "corpus", REPOS)
    feed = write_feed(tmp_path / "feed.json", entries)
    bucket = s3_server.make_bucket(f"scaleout-{tmp_path.name.lower().replace('_', '-')[:40]}")
    origin = make_workspace(tmp_path / "origin", str(feed), cache=f"s3://{bucket}/cache")
    origin.set_params(shards=SHARDS)
    point_r2_at(origin, s3_server, bucket)  # committed below: every clone reaches the same remote
    origin.dvc("remote", "default", "r2")
    shutil.copy2(ROOT / "Makefile", origin.path / "Makefile")
    origin.commit("pipeline: 4 shards, DVC remote r2 on the local S3 server, digest cache on the same bucket")
    hub = tmp_path / "hub.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(origin.path), str(hub)], check=True)
    machines = {name: machine(tmp_path, name, hub, origin.env) for name in ("coordinator", "worker-a", "worker-b")}
    return origin, bucket, machines, feed, entries


@pytest.fixture(scope="session")
def moto_s3(s3_server: LocalS3) -> Iterator[S3]:
    """The session's moto server (tests/conftest.py), behind a recording proxy."""
    proxy = S3Proxy(s3_server.server.get_host_and_port())
    yield S3(s3_server, proxy)
    proxy.stop()


@pytest.fixture
def site(moto_s3: S3, tmp_path: Path) -> Iterator[Site]:
    bucket = f"pub-{uuid.uuid4().hex[:12]}"
    moto_s3.client().create_bucket(Bucket=bucket)
    moto_s3.proxy.reset()
    yield Site(tmp_path / "ws", moto_s3, bucket)
    moto_s3.proxy.reset()
