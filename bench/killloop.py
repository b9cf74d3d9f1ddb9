"""Kill loop: ``kill -9`` of make's whole process group at random moments of ``make -j 10 repro``; does the next run
start?

python -m bench killloop [--cuts 50] [--repos 10] [--seed 1] [--full-every 5]

One small workspace (10 shards, ``--repos`` local repos on ``file://`` URLs, the project's Makefile). Each cut flips a
tracked param to a value never run before (so every shard runs; digests come from the digest cache), starts ``make -j 10
repro`` as its own process group, and SIGKILLs the group after a random delay within the length of a whole run. Then, as
the next run would, the workspace is checked: ``python -m xgov_digests.operations.procgroup --check`` (the repair every
make target runs first) and ``dvc status``; every ``--full-every`` cuts, and after the last, a whole ``make -j 10
repro`` must succeed and leave every shard and aggregate up to date. A workspace is bricked when any of these fails.
Counted on the way: what each kill left (a cut dvc.lock, a corrupt rwlock, dead processes' entries, ``dvc`` processes of
the killed run still alive 5 s later) and what the repair did.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parents[1]
SHARDS = 10


def make_cmd() -> list[str]:
    return ["make", "--no-print-directory", "-o", f"{VENV}/.installed", f"VENV={VENV}", "-j", str(SHARDS), "repro"]


def workspace(path: Path, repos: int, seed: int) -> Path:
    from tests.fixtures.sample import build_corpus
    from tests.fixtures.workspace import create_workspace

    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    feed = path / "feed.json"
    feed.write_text(json.dumps(build_corpus(path / "corpus", repos, seed)), encoding="utf-8")
    ws = create_workspace(
        path / "ws",
        {
            "feed": {"url": str(feed)},
            "shards": {"batch_size": SHARDS, "offsets": list(range(SHARDS))},
            "ingest": {"allow_file_urls": True, "workers": 2, "cache": str(path / "ws" / ".cache" / "digests")},
        },
    )
    shutil.copy2(ROOT / "Makefile", ws / "Makefile")
    return ws


def env() -> dict[str, str]:
    return dict(
        os.environ,
        PATH=f"{VENV / 'bin'}:{os.environ['PATH']}",
        DVC_NO_ANALYTICS="1",
        GIT_CONFIG_COUNT="1",
        GIT_CONFIG_KEY_0="url.http://127.0.0.1:9/.insteadOf",
        GIT_CONFIG_VALUE_0="https://github.com/",
    )


def flip(ws: Path, i: int) -> None:
    from xgov_digests.core.params import update_params

    update_params(ws / "params.yaml", {"ingest": {"max_failure_ratio": 0.5 + (i + 1) / 1000}})


def live_dvc(ws: Path) -> int:
    from xgov_digests.operations.dvc_repair import dvc_processes

    return len(dvc_processes(ws))


def left_state(ws: Path) -> dict[str, bool]:
    """What the kill left, before any repair."""
    from xgov_digests.operations.dvc_repair import lock_problem

    lock = ws / "dvc.lock"
    cut = lock.exists() and lock_problem(lock.read_text(errors="replace")) is not None
    rw = ws / ".dvc" / "tmp" / "rwlock"
    corrupt, entries = False, False
    if rw.exists():
        try:
            data = json.loads(rw.read_bytes())
            entries = any(data.get(m) for m in ("read", "write"))
        except ValueError:
            corrupt = True
    return {"cut_dvc_lock": cut, "corrupt_rwlock": corrupt, "rwlock_entries": entries}


def up_to_date(ws: Path, e: dict[str, str]) -> tuple[bool, str]:
    out = subprocess.run(
        [str(VENV / "bin" / "dvc"), "status", "--json"], cwd=ws, env=e, capture_output=True, text=True, timeout=600
    )
    if out.returncode != 0:
        return False, out.stderr.strip()[-300:]
    stale = sorted(k for k in json.loads(out.stdout or "{}") if k != "fetch")
    return not stale, ", ".join(stale)


LOCK_ERRORS = (
    "validation failed",
    "Unable to read RWLock-file",
    "is busy, it is being blocked by",
    "Unable to acquire lock",
)


def run(
    work: Path, *, cuts: int, repos: int, seed: int, full_every: int, log: Any, max_delay: float = 0.0
) -> dict[str, Any]:
    rng = random.Random(seed)
    ws = workspace(work, repos, seed)
    e = env()
    start = time.perf_counter()
    first = subprocess.run(make_cmd(), cwd=ws, env=e, capture_output=True, text=True, timeout=1800)
    whole = time.perf_counter() - start
    if first.returncode != 0:
        raise RuntimeError(f"the first make -j {SHARDS} repro failed:\n{first.stderr[-2000:]}")
    counts = {
        "cut_dvc_lock": 0,
        "corrupt_rwlock": 0,
        "rwlock_entries": 0,
        "alive_after_5s": 0,
        "repairs": 0,
        "check_failed": 0,
        "status_failed": 0,
        "full_runs": 0,
        "full_runs_failed": 0,
        "not_up_to_date": 0,
        "next_run_failed_early": 0,
        "bricked": 0,
    }
    failures: list[str] = []
    delays = []
    for i in range(cuts):
        flip(ws, i)
        delay = rng.uniform(0.0, min(whole, max_delay) if max_delay else whole)
        delays.append(round(delay, 2))
        output = work / f"cut-{i}.log"
        with output.open("w") as fh:  # this run is also the previous cut's "next run": it must start cleanly
            proc = subprocess.Popen(make_cmd(), cwd=ws, env=e, start_new_session=True, stdout=fh, stderr=fh)
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                pass
            with_pg = proc.poll() is None
            if with_pg:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        text = output.read_text(errors="replace")
        early = (not with_pg and proc.returncode != 0) or any(err in text for err in LOCK_ERRORS)
        if early:
            counts["next_run_failed_early"] += 1
            failures.append(f"cut {i}: the run failed on its own before the kill: {text.strip()[-400:]}")
        time.sleep(5)  # the killed run's own dvc processes (their own groups) are stopped by its watchdog
        alive = live_dvc(ws)
        counts["alive_after_5s"] += alive > 0
        deadline = time.monotonic() + 60
        while live_dvc(ws) and time.monotonic() < deadline:
            time.sleep(1)
        state = left_state(ws)
        for k, v in state.items():
            counts[k] += v
        bricked = False
        counts["repairs"] += "procgroup: warning" in text  # what this run's first check repaired of the cut before it
        if not (full_every and (i + 1) % full_every == 0) and i != cuts - 1:
            counts["bricked"] += early
            log(
                f"  cut {i + 1}/{cuts} at {delay:.1f}s (killed: {with_pg}): left {state}, live dvc after 5 s {alive}, "
                f"started cleanly: {not early}"
            )
            continue
        check = subprocess.run(
            [sys.executable, "-m", "xgov_digests.operations.procgroup", "--check"],
            cwd=ws,
            env=e,
            capture_output=True,
            text=True,
            timeout=900,
        )
        counts["repairs"] += "warning" in check.stderr
        bricked = early
        if check.returncode != 0:
            counts["check_failed"] += 1
            bricked = True
            failures.append(f"cut {i}: check: {check.stderr.strip()[-300:]}")
        status = subprocess.run(
            [str(VENV / "bin" / "dvc"), "status"], cwd=ws, env=e, capture_output=True, text=True, timeout=600
        )
        if status.returncode != 0 or any(err in status.stderr for err in LOCK_ERRORS):
            counts["status_failed"] += 1
            bricked = True
            failures.append(f"cut {i}: dvc status: {status.stderr.strip()[-300:]}")
        # a whole run: the workspace must end up up to date
        counts["full_runs"] += 1
        full = subprocess.run(make_cmd(), cwd=ws, env=e, capture_output=True, text=True, timeout=1800)
        if full.returncode != 0:
            counts["full_runs_failed"] += 1
            bricked = True
            failures.append(f"cut {i}: make -j {SHARDS} repro exit {full.returncode}: {full.stderr.strip()[-400:]}")
        else:
            ok, stale = up_to_date(ws, e)
            if not ok:
                counts["not_up_to_date"] += 1
                bricked = True
                failures.append(f"cut {i}: after make -j {SHARDS} repro, not up to date: {stale}")
        counts["bricked"] += bricked
        log(
            f"  cut {i + 1}/{cuts} at {delay:.1f}s (killed: {with_pg}): left {state}, live dvc after 5 s {alive}, "
            f"repair: {'yes' if 'warning' in check.stderr else 'no'}, bricked: {bricked}"
        )
    return {
        "cuts": cuts,
        "repos": repos,
        "shards": SHARDS,
        "whole_run_s": round(whole, 1),
        "max_delay_s": max_delay,
        "delays_s": delays,
        **counts,
        "failures": failures[:20],
        "passed": counts["bricked"] == 0,
    }
