"""Scale-out: shards on separate machines, coordinated only through git and the DVC remote.

Three machines are three clones of one bare git repository, each with its own DVC cache (.dvc/cache), temp folder and
DVC site cache: they share nothing but git and moto's S3 server on 127.0.0.1, which holds the DVC remote 'r2' and the
digest cache (ingest.cache: s3://<bucket>/cache). They run the Makefile's targets: the coordinator publishes one feed
snapshot (make fetch-publish), two workers digest the shards between them in parallel (make worker OFFSET=...), one
of them is SIGKILLed half-way through a shard and restarted, and the coordinator collects (make collect): every shard
comes from the run-cache, only aggregate runs, and the outputs equal those of `dvc repro` on one machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from ruamel.yaml import YAML

from tests.conftest import Workspace, write_feed
from tests.fixtures.locals3 import LocalS3
from tests.fixtures.scaleout import DVC_GIT_FILES, REPOS, SHARDS, committed_files, make, make_cmd

pytestmark = pytest.mark.slow
# What a stats row holds besides timings and whether the digest came from a clone or the digest cache.
STABLE = [
    "url",
    "owner",
    "name",
    "offset",
    "batch_size",
    "pushed_at",
    "error",
    "commit",
    "files",
    "digest_bytes",
    "truncated",
]


def start(ws: Workspace, *args: str, env: dict[str, str] | None = None, log: Path | None = None):
    """``make args`` in its own session (so that its whole process group can be killed); output to ``log`` or a pipe."""
    out = log.open("w") if log else subprocess.PIPE
    try:
        return subprocess.Popen(
            make_cmd(*args),
            cwd=ws.path,
            env={**ws.env, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    finally:
        if log:
            out.close()


def kill_when(proc: subprocess.Popen[str], marker: str, timeout: float = 180) -> tuple[str, bool]:
    """Read ``proc``'s output; once ``marker`` appears, SIGKILL its process group. Returns (output, killed)."""
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if marker in line:
                seen.set()
        seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen.wait(timeout)
    killed = proc.poll() is None
    if killed:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    reader.join(30)
    return "".join(lines), killed


def finish(proc: subprocess.Popen[str], log: Path, timeout: float = 300) -> str:
    proc.wait(timeout)
    out = log.read_text()
    assert proc.returncode == 0, out
    return out


def files(root: Path, pattern: str = "*") -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob(pattern)) if p.is_file()}


def stable_stats(ws: Workspace) -> pd.DataFrame:
    frame = pd.read_parquet(ws.path / "data" / "stats.parquet")
    # A digest-cache hit is the same digest as a clone: 'cached' and 'ok' are both a digest written.
    frame["status"] = frame["status"].replace({"cached": "ok"})
    return frame[[*STABLE, "status"]].sort_values(["offset", "url"], ignore_index=True)


def lock_outs(ws: Workspace) -> dict[str, str]:
    """path -> md5 of every output in dvc.lock but the shards' stats (they hold timings)."""
    stages = YAML(typ="safe").load((ws.path / "dvc.lock").read_text())["stages"]
    outs = {o["path"]: o["md5"] for s in stages.values() for o in s.get("outs", [])}
    return {p: m for p, m in outs.items() if p.startswith(("data/summaries/", "data/manifests", "data/repos.json"))}


def test_shards_on_separate_machines_meet_in_the_run_cache(three_machines, s3_server: LocalS3, tmp_path: Path):
    origin, bucket, machines, feed, entries = three_machines
    (coord, coord_spy), (a, _), (b, b_spy) = machines["coordinator"], machines["worker-a"], machines["worker-b"]
    b.set_params(ingest={"workers": 1})  # not tracked: a machine may tune it without changing any run-cache key
    timings: dict[str, float] = {}

    # 1. The coordinator fetches the feed once and publishes the snapshot: dvc.lock in git, data in the remote.
    started = time.monotonic()
    out = make(coord, "fetch-publish").stdout
    timings["fetch-publish"] = time.monotonic() - started
    assert coord.ran_stages(out) == ["fetch"], out
    coord.git("push", "-q", "origin", "HEAD")
    published = coord.git("rev-parse", "HEAD").strip()
    assert committed_files(coord, published) <= DVC_GIT_FILES and "dvc.lock" in committed_files(coord, published)
    # The feed moves on while the machines work (stars everywhere, one new push): nobody may fetch it again, or the
    # shards it touches would miss the run-cache.
    shutil.copy2(feed, tmp_path / "feed-published.json")
    entries[5] = dict(entries[5], pushedAt="2025-06-01T00:00:00Z")
    write_feed(feed, [dict(e, stargazersCount=e["stargazersCount"] + 1) for e in entries])

    # 2. Both workers take the published commit and split the offsets, in parallel. Worker B is SIGKILLed (its
    #    whole process group: make, dvc, the shard and its digest processes) once 2 of shard 1's 4 repos are done.
    for worker in (a, b):
        worker.git("pull", "-q")
        assert worker.git("rev-parse", "HEAD").strip() == published
    phase = time.monotonic()
    proc_a = start(a, "worker", "OFFSET=0 2", log=tmp_path / "worker-a.log")
    proc_b = start(b, "worker", "OFFSET=1 3", env=b_spy.env(sleep=1))  # slow clones: the kill lands mid-shard
    out_b, killed = kill_when(proc_b, "Processing batch 4, offset 1: 2/4 repos")
    assert killed, out_b
    assert "Running stage 'shard@1'" in out_b and "Batch 4, offset 1 complete" not in out_b
    assert not (b.path / "data/stats/shard-1.parquet").exists()

    b_spy.reset()
    restart = make(b, "worker", "OFFSET=1 3").stdout  # the same command, restarted
    out_a = finish(proc_a, tmp_path / "worker-a.log")
    timings["workers (B killed and restarted)"] = time.monotonic() - phase
    assert a.ran_stages(out_a) == ["shard@0", "shard@2"], out_a
    assert b.ran_stages(restart) == ["shard@1", "shard@3"], restart
    for out in (out_a, out_b, restart):
        assert "Running stage 'fetch'" not in out  # no worker fetches a newer feed
    for out in (out_a, restart):  # no DVC hint to stage the worker-only dvc.lock it then says never to commit
        assert "To track the changes with git" not in out and "git add" not in out.split("worker: shard(s)")[0], out
    # The restarted shard 1 took the repos digested before the kill from the shared digest cache on S3.
    shard1 = pd.read_parquet(b.path / "data/stats/shard-1.parquet")
    assert (shard1["status"] == "cached").sum() >= 2, shard1[["name", "status"]]
    shard1_urls = set(shard1["url"])
    assert len([c for c in b_spy.clones() if any(u in c for u in shard1_urls)]) <= 2
    assert set(shard1["status"]) <= {"ok", "cached"}

    # 3. The coordinator collects: no worker pushed a commit; every shard comes from the run-cache; only
    #    aggregate runs; one dvc.lock is committed.
    coord.git("pull", "-q")
    assert coord.git("rev-parse", "HEAD").strip() == published
    coord_spy.reset()
    started = time.monotonic()
    out = make(coord, "collect").stdout
    timings["collect"] = time.monotonic() - started
    for k in SHARDS["offsets"]:
        assert f"Stage 'shard@{k}' is cached - skipping run, checking out outputs" in out, out
    assert "Running stage 'shard@" not in out and coord.ran_stages(out) == ["aggregate"], out
    assert coord_spy.clones() == []
    coord.git("push", "-q", "origin", "HEAD")
    log = coord.git("log", "--format=%H %s", f"{published}~1..HEAD").splitlines()
    assert [line.split(" ", 1)[1] for line in log] == ["scale-out: collect shards", "scale-out: publish feed snapshot"]
    assert committed_files(coord, "HEAD") <= DVC_GIT_FILES
    for worker in (a, b):  # the workers' own dvc.lock entries stayed on the workers
        assert worker.git("rev-parse", "HEAD").strip() == published

    # 4. A second collect with nothing new runs nothing, uploads nothing, commits nothing.
    objects = s3_server.objects(bucket, "dvc/")
    head = coord.git("rev-parse", "HEAD").strip()
    out = make(coord, "collect").stdout
    assert coord.ran_stages(out) == [] and "Data and pipelines are up to date." in out, out
    assert all(f"Stage 'shard@{k}' didn't change, skipping" in out for k in SHARDS["offsets"]), out
    assert "collect: nothing new to commit" in out
    assert coord.git("rev-parse", "HEAD").strip() == head
    assert s3_server.objects(bucket, "dvc/") == objects

    # 5. One machine, the published feed, its own digest cache: the same snapshot, manifests, digests and stats.
    solo = Workspace(tmp_path / "solo", origin.env)
    subprocess.run(["git", "clone", "-q", str(origin.path), str(solo.path)], check=True)
    solo.set_params(
        feed={"url": str(tmp_path / "feed-published.json")}, ingest={"cache": str(tmp_path / "solo-local" / "digests")}
    )
    started = time.monotonic()
    solo.dvc("repro")
    timings["one machine: dvc repro"] = time.monotonic() - started
    assert files(coord.path / "data" / "summaries") == files(solo.path / "data" / "summaries")
    assert files(coord.path / "data" / "manifests") == files(solo.path / "data" / "manifests")
    assert (coord.path / "data/repos.json").read_bytes() == (solo.path / "data/repos.json").read_bytes()
    assert lock_outs(coord) == lock_outs(solo)
    pd.testing.assert_frame_equal(stable_stats(coord), stable_stats(solo))
    assert len(stable_stats(coord)) == REPOS and set(stable_stats(coord)["status"]) == {"ok"}
    print("\n".join(f"timing: {k}: {v:.1f} s" for k, v in timings.items()))


def test_machines_refuse_to_run_other_code_or_params(three_machines) -> None:
    """A machine whose code or tracked params differ from the commit would miss every run-cache entry: refused."""
    machines = three_machines[2]
    (coord, _), (a, _) = machines["coordinator"], machines["worker-a"]
    for bad in ("9", "-1", "abc", "0 7"):  # 4 shards: offsets 0..3; checked before DVC runs, twice in a row
        for _ in range(2):
            result = make(coord, "worker", f"OFFSET={bad}", check=False)
            assert result.returncode == 2 and "not in shards.offsets [0, 1, 2, 3]" in result.stderr, result.stderr
            assert "dvc" not in result.stdout and coord.git("status", "--porcelain") == ""
    broken = a.path.parent / "broken-dvc-config"  # 'dvc params diff' fails: the param guard cannot tell, so refuses
    broken.mkdir()
    (broken / "config").write_text("[core\n")
    result = make(a, "worker", "OFFSET=0", env={"DVC_GLOBAL_CONFIG_DIR": str(broken)}, check=False)
    assert result.returncode == 2 and "cannot tell whether tracked params differ" in result.stderr, result.stderr
    assert a.ran_stages(result.stdout) == []
    a.set_params(ingest={"max_file_size": 1000})  # tracked: part of every shard's run-cache key
    result = make(a, "worker", "OFFSET=0", check=False)
    assert result.returncode == 2 and "tracked params differ from the last commit (ingest.max_file_size)" in (
        result.stderr
    ), result.stderr
    (a.path / "stages" / "shard.py").write_text((a.path / "stages" / "shard.py").read_text() + "\n# edited\n")
    result = make(a, "worker", "OFFSET=0", check=False)
    assert result.returncode == 2 and "stages/, xgov_digests/ or dvc.yaml differ from the last commit" in result.stderr

    result = make(coord, "collect", "REMOTE=local", check=False)  # dvc repro --pull reads only the default remote
    assert result.returncode == 2 and "REMOTE=local is not the default remote (r2)" in result.stderr, result.stderr
    result = make(coord, "worker", check=False)
    assert result.returncode == 2 and "set OFFSET=K" in result.stderr
    assert coord.ran_stages(result.stdout) == [] and not (coord.path / "dvc.lock").exists()


def test_collect_reports_missing_workers_and_digests_them_only_when_allowed(three_machines, s3_server: LocalS3) -> None:
    bucket, machines = three_machines[1], three_machines[2]
    (coord, coord_spy), (a, _) = machines["coordinator"], machines["worker-a"]
    make(coord, "fetch-publish")
    coord.git("push", "-q", "origin", "HEAD")
    a.git("pull", "-q")
    out = make(a, "worker", "OFFSET=0 2").stdout  # the worker for shards 1 and 3 never ran
    assert "missing 0, re-uploaded 0, still missing 0" in out, out
    # A digest object of shard 0 lost from the bucket after the worker's push: the run-cache entry that names it
    # stays, so dvc push says nothing is left to do; the worker's audit puts it back.
    listing = a.path / ".dvc/cache/files/md5" / lock_outs(a)["data/summaries/shard-0"][:2]
    md5 = json.loads((listing / lock_outs(a)["data/summaries/shard-0"][2:]).read_bytes())[0]["md5"]
    key = f"dvc/files/md5/{md5[:2]}/{md5[2:]}"
    s3_server.client().delete_object(Bucket=bucket, Key=key)
    again = make(a, "worker", "OFFSET=0").stdout
    assert "missing 1, re-uploaded 1, still missing 0" in again, again
    assert key in s3_server.objects(bucket)
    coord_spy.reset()

    refused = make(coord, "collect", check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "2 shards are not in the remote's run-cache: shard@1, shard@3" in refused.stderr
    assert 'make worker OFFSET="1 3"' in refused.stderr and "ALLOW_LOCAL=1" in refused.stderr
    assert "from the run-cache: shard@0, shard@2" in refused.stderr
    assert "shard@1: not in the remote's run-cache; not digested here" in refused.stdout  # DVC ran only the probe
    assert coord_spy.clones() == [] and not (coord.path / "data" / "stats" / "shard-1.parquet").exists()

    allowed = make(coord, "collect", "ALLOW_LOCAL=1").stdout
    assert "collect: digesting shard@1, shard@3 here: not in the remote's run-cache" in allowed
    assert "collect: from the run-cache: none; already here: shard@0, shard@2; digested here: shard@1, shard@3" in (
        allowed
    ), allowed
    assert coord.ran_stages(allowed)[-3:] == ["shard@1", "shard@3", "aggregate"]  # after the probe's
    assert (coord.path / "data" / "stats" / "shard-3.parquet").exists() and (coord.path / "data/stats.parquet").exists()
    assert len(coord_spy.clones()) <= REPOS // 2
