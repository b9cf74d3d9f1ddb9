"""`make -j N repro` (`xgov-digests repro -j N`): the shards' commands at once on one machine, recorded with one
`dvc commit --force` of them all.

Real make, real dvc, real git clones of local repositories: the outputs, dvc.lock entries and run-cache entries equal
a sequential `dvc repro`'s (a fresh clone's `dvc repro --pull` restores every shard from them), a failed shard is the
only one the next run repeats, Ctrl-C and SIGTERM stop every shard, and DVC's locks hold up.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest
from ruamel.yaml import YAML

from tests.conftest import VENV_BIN, GitSpy, Workspace, point_r2_at, write_feed
from tests.fixtures.sample import build_corpus
from xgov_digests.core.params import load_params

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parents[1]
SHARDS = {"batch_size": 4, "offsets": [0, 1, 2, 3], "assign": "index"}  # index: 3 repos in every shard
REPOS = 12  # 3 per shard

FAILING_GIT = """#!/bin/sh
# Clones of a URL listed in $FAIL_CLONES fail the way a dropped connection does; everything else runs the real git.
case "$*" in *" clone "*)
  while read -r url; do
    case "$*" in *"$url"*) echo "fatal: unable to access '$url': Recv failure: Connection reset by peer" >&2; exit 128;;
    esac
  done < "$FAIL_CLONES";;
esac
exec "$REAL_GIT" "$@"
"""


def make_cmd(*args: str) -> list[str]:
    return ["make", "--no-print-directory", "-o", f"{VENV}/.installed", f"VENV={VENV}", *args]


def spy_in(path: Path) -> GitSpy:
    path.mkdir(parents=True)
    return GitSpy(path)


def make(ws: Workspace, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return ws.run(*make_cmd(*args), check=check, timeout=300)


@pytest.fixture
def pipeline(workspace_factory, tmp_path: Path):
    """A workspace of 12 local repos in 4 shards (2 clones in flight per shard), with the project's Makefile."""

    def factory(name: str, extra_env: dict[str, str] | None = None) -> Workspace:
        feed = tmp_path / "feed.json"
        if not feed.exists():
            write_feed(feed, build_corpus(tmp_path / "corpus", REPOS))
        ws = workspace_factory(str(feed), name=name, extra_env=extra_env)
        ws.set_params(shards=SHARDS)
        shutil.copy2(ROOT / "Makefile", ws.path / "Makefile")
        ws.commit("4 shards")
        return ws

    return factory


def without_timings(value: Any) -> Any:
    """Metrics with every ``*_s`` (seconds) key left out, at any depth."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if not k.endswith("_s")}
    return value


def outputs(ws: Workspace) -> dict[str, Any]:
    """What the pipeline produced, timings left out: digests, snapshot, manifests, metrics, stats."""
    data = ws.path / "data"
    files = {
        str(p.relative_to(ws.path)): p.read_bytes()
        for base in (data / "summaries", data / "manifests")
        for p in sorted(base.rglob("*"))
        if p.is_file() and p.name != ".gitignore"
    }
    files["data/repos.json"] = (data / "repos.json").read_bytes()

    def stats(path: Path) -> list[dict[str, Any]]:
        frame = pd.read_parquet(path)
        frame = frame.drop(columns=[c for c in frame.columns if c.endswith("_s")])
        return frame.sort_values("url").reset_index(drop=True).to_dict("records")

    # DVC adds a stage's outputs to these as the stage finishes: the shards finish in any order
    ignored = {str(p.relative_to(ws.path)): sorted(p.read_text().splitlines()) for p in data.rglob(".gitignore")}
    return {
        "files": files,
        "gitignore": ignored,
        "metrics": without_timings(json.loads((ws.path / "reports" / "metrics.json").read_text())),
        "stats": stats(data / "stats.parquet"),
        "shard_stats": {p.name: stats(p) for p in sorted((data / "stats").glob("*.parquet"))},
    }


def locked_stages(ws: Workspace) -> set[str]:
    return set(YAML(typ="safe").load(ws.path / "dvc.lock")["stages"])


def status(ws: Workspace) -> dict[str, Any]:
    return json.loads(ws.dvc("status", "--json").stdout)


def shard_of(ws: Workspace) -> dict[str, int]:
    """Repo URL -> the offset whose manifest lists it."""
    manifests = ws.path / "data" / "manifests"
    return {
        repo["url"]: k
        for k in SHARDS["offsets"]
        for repo in json.loads((manifests / f"shard-{k}.json").read_text())["repos"]
    }


def shards_overlapped(ws: Workspace, spy: GitSpy) -> bool:
    """Whether clones of two different shards were in flight at the same moment."""
    owner = shard_of(ws)
    spans = []
    for line in spy.log.read_text().splitlines():
        kind, when, pid, rest = line.split(" ", 3)
        if " clone " in f" {rest} ":
            url = next(u for u in owner if f" {u} " in f" {rest} ")
            spans.append((kind, float(when), pid, owner[url]))
    starts = {pid: (t, k) for kind, t, pid, k in spans if kind == "start"}
    ends = {pid: t for kind, t, pid, _ in spans if kind == "end"}
    intervals = [(t, ends[pid], k) for pid, (t, k) in starts.items() if pid in ends]
    return any(a0 < b1 and b0 < a1 and ka != kb for a0, a1, ka in intervals for b0, b1, kb in intervals)


def test_parallel_repro_equals_dvc_repro(pipeline, tmp_path: Path) -> None:
    reference = pipeline("sequential")
    reference.dvc("repro")

    spy = spy_in(tmp_path / "spy")
    # each clone takes 1.5 s: a shard's clones span 3 s, longer than the next dvc holds the repository lock
    # before its shard's command starts, even on a loaded machine
    ws = pipeline("parallel", extra_env=spy.env(sleep=1.5))
    out = make(ws, "-j", "4", "repro").stdout
    ran = ws.ran_stages(out)
    assert ran[0] == "fetch" and ran[-1] == "aggregate" and sorted(ran[1:-1]) == [f"shard@{k}" for k in range(4)]
    assert shards_overlapped(ws, spy), "make -j 4 ran the shards one after another"

    expected = outputs(reference)
    assert expected["metrics"]["ok"] == REPOS
    got = outputs(ws)
    assert got["files"].keys() == expected["files"].keys()
    assert got == expected
    assert locked_stages(ws) == {"fetch", "aggregate", *(f"shard@{k}" for k in range(4))}
    assert status(ws) == {}

    spy.reset()
    again = make(ws, "-j", "4", "repro").stdout
    assert ws.ran_stages(again) == []  # the feed's hash in dvc.lock is unchanged: not even fetch runs
    assert spy.clones() == []
    assert status(ws) == {}

    # without -j: the same targets, one shard after another, the same outputs
    spy2 = spy_in(tmp_path / "spy2")
    serial = pipeline("serial", extra_env=spy2.env())
    out = make(serial, "repro").stdout
    assert serial.ran_stages(out) == ["fetch", "shard@0", "shard@1", "shard@2", "shard@3", "aggregate"]
    assert not shards_overlapped(serial, spy2)
    assert outputs(serial) == expected


def shard_lock_entries(ws: Workspace) -> dict[str, Any]:
    """dvc.lock's shard entries, each stats parquet's hash and size left out (the rows hold timings)."""
    stages = YAML(typ="safe").load(ws.path / "dvc.lock")["stages"]
    out = {}
    for name, entry in stages.items():
        if name.startswith("shard@"):
            outs = [o if not o["path"].endswith(".parquet") else {"path": o["path"]} for o in entry["outs"]]
            out[name] = {**entry, "outs": outs}
    return out


def run_cache_keys(ws: Workspace) -> set[str]:
    """The run-cache's keys (a hash of a stage's command, deps and params) that have an entry."""
    runs = ws.path / ".dvc" / "cache" / "runs"
    return {p.parent.name for p in runs.glob("*/*/*") if p.is_file()}


def test_parallel_record_is_dvc_repros_and_restores_in_a_fresh_clone(pipeline, tmp_path: Path, s3_server) -> None:
    """repro -j 4 records what dvc repro records: the same dvc.lock entries (order aside) and run-cache keys; pushed
    to an S3 remote, a fresh clone's plain `dvc repro --pull` restores every shard from it without running one."""
    reference = pipeline("reference")
    reference.dvc("repro")
    ws = pipeline("recorded")
    make(ws, "-j", "4", "repro")
    assert set(shard_lock_entries(ws)) == {f"shard@{k}" for k in range(4)}
    assert shard_lock_entries(ws) == shard_lock_entries(reference)
    assert len(run_cache_keys(ws)) == 4 and run_cache_keys(ws) == run_cache_keys(reference)
    assert outputs(ws) == outputs(reference)

    bucket = s3_server.make_bucket(f"parallel-{tmp_path.name.lower().replace('_', '-')[:40]}")
    point_r2_at(ws, s3_server, bucket)
    ws.dvc("remote", "default", "r2")
    ws.dvc("push", "--run-cache")
    ws.git("add", "-A")
    ws.commit("digests")
    fresh_path = tmp_path / "fresh"
    subprocess.run(["git", "clone", "-q", str(ws.path), str(fresh_path)], check=True)
    spy = spy_in(tmp_path / "fresh-spy")
    fresh = Workspace(fresh_path, {**ws.env, **spy.env()})
    out = fresh.dvc("repro", "--pull").stdout  # dvc.lock names every output (the feed's ETag too): pulled, none runs
    assert fresh.ran_stages(out) == [] and spy.clones() == [], out
    assert outputs(fresh) == outputs(reference)

    # a clone whose dvc.lock holds only fetch (as the scale-out coordinator's): the shards come from the run-cache
    lock = YAML(typ="safe").load(fresh.path / "dvc.lock")
    lock["stages"] = {"fetch": lock["stages"]["fetch"]}
    YAML().dump(lock, fresh.path / "dvc.lock")
    shutil.rmtree(fresh.path / ".dvc" / "cache")
    out = fresh.dvc("repro", "--pull").stdout
    for k in range(4):
        assert f"Stage 'shard@{k}' is cached - skipping run" in out, out
    assert fresh.ran_stages(out) == ["aggregate"] and spy.clones() == [], out
    assert outputs(fresh) == outputs(reference)


def test_make_run_limit_goes_through_the_same_targets(pipeline) -> None:
    ws = pipeline("run")
    out = make(ws, "-j", "4", "run", "LIMIT=8").stdout
    ran = ws.ran_stages(out)
    assert ran[0] == "fetch" and ran[-1] == "aggregate" and sorted(ran[1:-1]) == [f"shard@{k}" for k in range(4)]
    assert "xgov-digests run" not in out  # the recipe is not echoed between the command's lines
    dry = make(ws, "-n", "-j", "4", "run", "LIMIT=8").stdout
    assert dry.strip().endswith("xgov-digests run -j 4 --limit 8"), dry  # make's -j is passed on to the command
    assert load_params(ws.path / "params.yaml").feed.limit == 8
    assert json.loads((ws.path / "reports" / "metrics.json").read_text())["repos"] == 8
    assert "default remote is not r2: skipping publish" in out  # the local remote: pushed there, not published
    assert status(ws) == {}


def test_a_failed_shard_is_named_and_is_the_only_one_run_again(pipeline, tmp_path: Path) -> None:
    shim = tmp_path / "failbin"
    shim.mkdir()
    (shim / "git").write_text(FAILING_GIT)
    (shim / "git").chmod(0o755)
    fail = tmp_path / "fail-clones.txt"
    ws = pipeline(
        "failing",
        extra_env={
            "PATH": f"{shim}:{VENV_BIN}:{os.environ['PATH']}",
            "FAIL_CLONES": str(fail),
            "REAL_GIT": shutil.which("git") or "/usr/bin/git",
        },
    )
    ws.set_params(ingest={"retries": 0})
    ws.dvc("repro", "--single-item", "fetch")
    shard_2 = [url for url, k in shard_of(ws).items() if k == 2]
    fail.write_text("".join(f"{url}\n" for url in shard_2))  # every clone of shard 2 fails: the stage fails

    result = make(ws, "-j", "4", "repro", check=False)
    assert result.returncode != 0
    assert "xgov-digests repro: error: shard@2 failed and was not recorded; the other shards are" in result.stderr
    failed = [ln for ln in result.stdout.splitlines() if ln.startswith("ERROR: failed to reproduce")]
    assert failed == ["ERROR: failed to reproduce 'shard@2': its command did not finish (its messages are above)"]
    assert locked_stages(ws) == {"fetch", "shard@0", "shard@1", "shard@3"}  # the others are recorded, no aggregate
    assert set(status(ws)) == {"shard@2", "aggregate"}

    fail.write_text("")
    out = make(ws, "-j", "4", "repro").stdout
    assert ws.ran_stages(out) == ["shard@2", "aggregate"]
    assert json.loads((ws.path / "reports" / "metrics.json").read_text())["ok"] == REPOS
    assert status(ws) == {}


def leftovers(root: Path) -> list[list[str]]:
    """Processes of this test still alive (run in, or naming, ``root``): dvc, the shards, git, the spy's sleeps."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        cmd, cwd = proc.info["cmdline"] or [], proc.info["cwd"] or ""
        if cwd.startswith(str(root)) or any(str(root) in part for part in cmd):
            found.append(cmd)
    return found


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_stopping_make_stops_every_shard(pipeline, tmp_path: Path, how: str) -> None:
    """Ctrl-C (SIGINT to make's process group, as a terminal sends it) or SIGTERM to make alone."""
    spy = spy_in(tmp_path / "spy")
    (tmp_path / "tmp").mkdir()  # the clones' checkouts: inside tmp_path, so that leftovers() sees them
    ws = pipeline("stopped", extra_env={**spy.env(sleep=60), "TMPDIR": str(tmp_path / "tmp")})
    log = (tmp_path / "make.log").open("w")
    proc = subprocess.Popen(
        make_cmd("-j", "4", "repro"),
        cwd=ws.path,
        env=ws.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while len(spy.clones()) < 8:  # 4 shards x 2 workers, each in a 60 s clone
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "make.log").read_text()
            time.sleep(0.1)
        start = time.monotonic()
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        took = time.monotonic() - start
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    output = (tmp_path / "make.log").read_text()
    assert proc.returncode != 0 and took < 10, (took, output)
    time.sleep(0.5)
    assert leftovers(tmp_path) == []
    assert len(spy.clones()) == 8  # the shards' other repos were never started
    assert all(f"failed to reproduce 'shard@{k}'" in output for k in range(4))
    assert "aggregate" not in ws.ran_stages(output)
    rwlock = json.loads((ws.path / ".dvc" / "tmp" / "rwlock").read_text())
    assert not any(rwlock.get(mode) for mode in ("read", "write")), rwlock  # every dvc released its locks
    assert locked_stages(ws) == {"fetch"}


def test_repeated_parallel_runs_never_hit_a_lock_error(pipeline, tmp_path: Path) -> None:
    """Every run re-digests every shard (each night pushes every repo), 4 dvc processes at once, 3 times."""
    ws = pipeline("locks")
    feed = Path(load_params(ws.path / "params.yaml").feed.url)
    entries = json.loads(feed.read_text())
    for night in range(3):
        pushed = [dict(e, pushedAt=f"2030-01-0{night + 1}T00:00:00Z") for e in entries]
        write_feed(feed, pushed)
        result = make(ws, "-j", "4", "repro", check=False)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert "Unable to acquire lock" not in output and "is busy" not in output
        assert sorted(ws.ran_stages(output)) == sorted(["fetch", "aggregate", *(f"shard@{k}" for k in range(4))])
        rwlock = json.loads((ws.path / ".dvc" / "tmp" / "rwlock").read_text())  # valid JSON, nothing held
        assert not any(rwlock.get(mode) for mode in ("read", "write")), rwlock
        assert locked_stages(ws) == {"fetch", "aggregate", *(f"shard@{k}" for k in range(4))}
        metrics = json.loads((ws.path / "reports" / "metrics.json").read_text())
        assert metrics["ok"] == REPOS, metrics
    assert status(ws) == {}


def test_group_stops_a_command_that_ignores_sigint_after_its_grace(tmp_path: Path) -> None:
    """operations.procgroup: one SIGINT to the command's whole group; a group still running after --grace is killed."""
    marker = tmp_path / "child.pid"
    script = f"trap '' INT; sleep 30 & echo $! > {marker}; wait"  # ignores SIGINT, and so does its sleep
    group = [sys.executable, "-m", "xgov_digests.operations.procgroup"]
    proc = subprocess.Popen([*group, "--grace", "1", "--", "sh", "-c", script], cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 20
    while not marker.exists() or not marker.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int(marker.read_text())
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 128 + signal.SIGTERM
    assert time.monotonic() - start < 5
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE


def test_group_passes_on_the_exit_status(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "xgov_digests.operations.procgroup", "--"]
    assert subprocess.run([*run, "sh", "-c", "exit 3"], cwd=ROOT).returncode == 3
    assert subprocess.run([*run, "sh", "-c", "kill -TERM $$"], cwd=ROOT).returncode == 128 + signal.SIGTERM
    missing = subprocess.run([*run, str(tmp_path / "no-such-command")], cwd=ROOT, capture_output=True, text=True)
    assert missing.returncode == 127 and "cannot run" in missing.stderr
