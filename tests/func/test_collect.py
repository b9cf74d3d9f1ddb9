"""Collect asks DVC what each shard is, and a dangling run-cache entry (its data never reached the remote) cannot hide
a complete one.

From a fresh coordinator clone after a whole run: one shard changed and came from a worker, one changed and has no
worker (digested here), the rest unchanged since the committed run; and beside the worker's entry for its shard, an
entry whose objects are not on the remote, named so that DVC would pick it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import Workspace, write_feed
from tests.fixtures.locals3 import LocalS3
from tests.fixtures.scaleout import DVC_GIT_FILES, VENV, committed_files, machine, make, make_cmd

pytestmark = pytest.mark.slow


def test_fresh_coordinator_sees_unchanged_restored_and_missing_shards(
    three_machines,
    s3_server: LocalS3,
    tmp_path: Path,  # noqa: F811 - the fixture
) -> None:
    origin, bucket, machines, feed, entries = three_machines
    (coord, _), (a, _) = machines["coordinator"], machines["worker-a"]

    # 1. one whole run on the coordinator, pushed and committed (what make run leaves)
    coord.dvc("repro")
    coord.dvc("push")
    coord.run("git", "add", "-A")
    coord.git("commit", "-qm", "run")
    coord.git("push", "-q", "origin", "HEAD")

    # 2. two repos move on: entries[0] sorts into shard 0, entries[3] into shard 1 (assign: index)
    entries[0] = dict(entries[0], pushedAt="2025-06-01T00:00:00Z")
    entries[3] = dict(entries[3], pushedAt="2025-06-01T00:00:00Z")
    write_feed(feed, entries)
    make(coord, "fetch-publish")
    coord.git("push", "-q", "origin", "HEAD")

    # 3. a worker runs shard 0 only (nobody runs shard 1)
    a.git("pull", "-q")
    make(a, "worker", "OFFSET=0")
    runs = [k for k in s3_server.objects(bucket, "dvc/runs/")]
    assert len(runs) == 1, runs
    good = runs[0]
    client = s3_server.client()
    entry = yaml.safe_load(client.get_object(Bucket=bucket, Key=good)["Body"].read())
    # 4. beside it, an entry whose data never reached the remote (a push stopped between the entry and the data),
    #    named to sort last: the one DVC would try
    for out in entry["outs"]:
        out["md5"] = uuid.uuid4().hex + (".dir" if out["md5"].endswith(".dir") else "")
    dangling = good.rsplit("/", 1)[0] + "/" + "f" * 64
    client.put_object(Bucket=bucket, Key=dangling, Body=yaml.safe_dump(entry).encode())

    # 5. a fresh coordinator clone collects
    fresh, spy = machine(tmp_path, "fresh", tmp_path / "hub.git", origin.env)
    out = make(fresh, "collect")
    report = [ln for ln in out.stdout.splitlines() if ln.startswith("collect: from the run-cache")]
    assert report == ["collect: from the run-cache: shard@0; already here: shard@2, shard@3; digested here: shard@1"], (
        out.stdout + out.stderr
    )
    assert "ignoring a run-cache entry whose data is not on the remote" in out.stdout + out.stderr
    assert "f" * 64 in out.stdout + out.stderr
    clones = spy.clones()
    assert len(clones) == 1 and entries[3]["url"] in clones[0]  # only the changed repo of the shard with no worker
    assert committed_files(fresh, "HEAD") <= DVC_GIT_FILES
    status = fresh.dvc("status", "--json").stdout
    assert "shard@" not in status and "aggregate" not in status


def killed_once_held(ws: Workspace, cmd: list[str], proxy, log: Path, landed=lambda: True) -> None:
    """Start ``cmd`` in its own process group and ``kill -9`` the group once the proxy holds one of its uploads and
    ``landed()`` holds (the worst moment), then let the held requests go."""
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ws.path, env=ws.env, stdout=out, stderr=out, start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        while not (proxy.held and landed()):
            assert proc.poll() is None, f"finished before an upload was held: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proxy.release.set()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("how", ["refused", "killed"])
def test_a_real_push_stopped_after_its_run_cache_entry(
    three_machines,
    s3_server: LocalS3,
    tmp_path: Path,  # noqa: F811 - the fixture
    how: str,
) -> None:
    """Worker B's real ``dvc push --run-cache`` stops after DVC sent the run-cache entry and before its data: its data
    uploads refused (a token losing access, a network cut), or the push ``kill -9``-ed while its first data upload is
    in flight (a CI timeout, a pre-empted runner). The entry is on the remote, its stats object is not. Worker A's
    complete entry for the same shard is restored beside it, and B's is named. The worker's own push, stopped the
    same way, leaves no entry."""
    from tests.fixtures.s3proxy import S3Proxy

    origin, bucket, machines, feed, entries = three_machines
    (coord, _), (a, _), (b, _) = machines["coordinator"], machines["worker-a"], machines["worker-b"]
    make(coord, "fetch-publish")
    coord.git("push", "-q", "origin", "HEAD")
    a.git("pull", "-q")
    make(a, "worker", "OFFSET=0")
    complete = set(s3_server.objects(bucket, "dvc/runs/"))
    assert len(complete) == 1
    files = set(s3_server.objects(bucket, "dvc/files/"))

    def entry_landed() -> bool:
        return bool(set(s3_server.objects(bucket, "dvc/runs/")) - complete)

    proxy = S3Proxy(s3_server.server.get_host_and_port())
    data = f"/{bucket}/dvc/files/"  # data uploads; run-cache entries and the digest cache pass
    try:
        b.git("pull", "-q")
        b.dvc("remote", "modify", "--local", "r2", "endpointurl", proxy.endpoint)
        if how == "refused":
            proxy.deny = data
            failed = make(b, "worker", "OFFSET=0", check=False)
            assert failed.returncode != 0, failed.stdout
        else:
            proxy.hold = data
            killed_once_held(b, make_cmd("worker", "OFFSET=0"), proxy, tmp_path / "worker-b.log")
        # the worker pushes a shard's data before its run-cache entry: a push stopped in between leaves no entry
        assert set(s3_server.objects(bucket, "dvc/runs/")) == complete
        # DVC's own 'dvc push --run-cache' (a hand push, an older worker) sends the entry first: it dangles
        if how == "refused":
            pushed = b.dvc("push", "--run-cache", "shard@0", check=False)
            assert pushed.returncode != 0, pushed.stdout
        else:
            proxy.reset()
            proxy.hold = data
            push = [str(VENV / "bin" / "dvc"), "push", "--run-cache", "shard@0"]
            killed_once_held(b, push, proxy, tmp_path / "push-b.log", landed=entry_landed)
    finally:
        proxy.stop()
    dangling = set(s3_server.objects(bucket, "dvc/runs/")) - complete
    assert len(dangling) == 1, "DVC sent no run-cache entry before the data: nothing dangling to test"
    entry = dangling.pop()
    assert set(s3_server.objects(bucket, "dvc/files/")) == files  # none of B's data arrived
    fresh, _ = machine(tmp_path, "fresh", tmp_path / "hub.git", origin.env)
    out = make(fresh, "collect", "ALLOW_LOCAL=1")
    text = out.stdout + out.stderr
    assert "collect: from the run-cache: shard@0; already here: none; digested here: shard@1, shard@2, shard@3" in (
        text
    ), text
    # whichever entry DVC tried first, shard 0 is worker A's complete result (B's stats differ: timings, cache hits)
    stats = "data/stats/shard-0.parquet"
    assert (fresh.path / stats).read_bytes() == (a.path / stats).read_bytes()
    if "ignoring a run-cache entry" in text:  # DVC tried B's first: it is named
        assert entry.rsplit("/", 1)[1] in text
    print(f"DVC tried {'B' if 'ignoring a run-cache entry' in text else 'A'}'s entry first")
