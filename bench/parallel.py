"""Sequential ``dvc repro`` against ``make -j N repro`` (the shards at once), on the bench corpus and git server.

Every run is a real DVC workspace (``tests.fixtures.workspace.create_workspace`` plus the project's Makefile) with
10 shards, cloning ``https://github.com/<owner>/<name>`` from the local git server (git's ``insteadOf``) at the
configured latency per request. Measured, wall time and peak RSS of the whole process tree:

1. ``compare``: two workspaces on one feed, one run by ``dvc repro``, the other by ``make -j 10 repro``: the full
   run (cold digest caches), a night after 1% of the repos were pushed, a night where nothing changed; the ratio
   sequential / parallel for each, and whether both produced the same digests.
2. ``budget``: ``make -j J repro`` for J in 1/2/5/10 and ``ingest.workers`` 2/8, each a full cold run.
3. ``locks``: repeated ``make -j 10 repro`` runs in one workspace, each re-running all ten shards (a tracked param
   flips; every digest comes from the digest cache): lock errors, failed runs and a corrupt ``.dvc/tmp/rwlock``
   counted.
4. ``first_repro_both_ways``: the first repro of a workspace of N cached digests (bench/dvc_scale.py's synthetic
   feed and pre-filled cache, no clones), ``dvc repro`` against ``make -j 10 repro``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from bench import corpus, dvc_scale, measure
from tests.fixtures.gitserver import GitServer
from xgov_digests.core.params import update_params

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parents[1]
BATCH = 10
LOCK_ERRORS = ("Unable to acquire lock", "is busy, it is being blocked by", "Unable to read RWLock-file")


def make_cmd(jobs: int) -> list[str]:
    """``make -j jobs repro`` with this interpreter's virtualenv (already installed: -o skips the install rule)."""
    return ["make", "--no-print-directory", "-o", f"{VENV}/.installed", f"VENV={VENV}", "-j", str(jobs), "repro"]


def dvc_cmd() -> list[str]:
    return [str(VENV / "bin" / "dvc"), "repro"]


def workspace(path: Path, feed: Path, workers: int) -> Path:
    """A fresh DVC workspace with 10 shards, its own digest cache and the project's Makefile."""
    from tests.fixtures.workspace import create_workspace

    shutil.rmtree(path, ignore_errors=True)
    ws = create_workspace(
        path,
        {
            "feed": {"url": str(feed.resolve())},
            "shards": {"batch_size": BATCH, "offsets": list(range(BATCH)), "assign": "index"},
            "ingest": {
                "allowed_hosts": ["github.com"],
                "allow_file_urls": False,
                "workers": workers,
                "cache": str((path / ".cache" / "digests").resolve()),
            },
        },
    )
    shutil.copy2(ROOT / "Makefile", ws / "Makefile")
    return ws


def metrics(ws: Path) -> dict[str, Any]:
    path = ws / "reports" / "metrics.json"
    m = json.loads(path.read_text()) if path.exists() else {}
    return {k: m.get(k) for k in ("repos", "ok", "cached", "failed", "empty")}


def digests(ws: Path) -> dict[str, bytes]:
    base = ws / "data" / "summaries"
    return {str(p.relative_to(base)): p.read_bytes() for p in base.rglob("*.txt")}


def _ran(stdout: str) -> list[str]:
    return [ln.split("'")[1] for ln in stdout.splitlines() if ln.startswith("Running stage '")]


def _run(cmd: list[str], ws: Path, env: dict[str, str]) -> dict[str, Any]:
    m = measure.run(cmd, cwd=ws, env=env, timeout=3600)
    out = m.stdout + m.stderr_tail
    return {
        "wall_s": m.wall_s,
        "peak_rss_tree_mb": m.peak_rss_tree_mb,
        "cpu_s": m.cpu_s,
        "returncode": m.returncode,
        "ran": sorted(_ran(m.stdout)),
        "lock_errors": sum(out.count(e) for e in LOCK_ERRORS),
        "metrics": metrics(ws),
        "stderr_tail": m.stderr_tail[-600:] if m.returncode else "",
    }


def _push(entries: list[dict[str, Any]], share: float, stamp: str) -> tuple[list[dict[str, Any]], int]:
    """The feed after ``share`` of its repos (at least one, spread over the feed) got a new pushedAt."""
    n = max(1, round(len(entries) * share))
    step = len(entries) / n
    picked = {int(i * step) for i in range(n)}
    return [dict(e, pushedAt=stamp) if i in picked else e for i, e in enumerate(entries)], len(picked)


def compare(
    work: Path, entries: list[dict[str, Any]], env: dict[str, str], *, jobs: int, workers: int, churn: float, log: Any
) -> dict[str, Any]:
    """dvc repro against make -j jobs repro: full run, a churn night, a nothing-changed night."""
    feed = work / "feed-compare.json"
    feed.write_text(json.dumps(entries, indent=1), encoding="utf-8")
    seq = workspace(work / "ws-dvc-repro", feed, workers)
    par = workspace(work / f"ws-make-j{jobs}", feed, workers)
    out: dict[str, Any] = {"jobs": jobs, "workers": workers, "repos": len(entries)}
    pushed, changed = _push(entries, churn, "2030-01-01T00:00:00Z")
    for night, night_feed in (("full", entries), ("churn", pushed), ("unchanged", pushed)):
        feed.write_text(json.dumps(night_feed, indent=1), encoding="utf-8")
        a = _run(dvc_cmd(), seq, env)
        b = _run(make_cmd(jobs), par, env)
        out[night] = {"dvc_repro": a, "make_j": b, "ratio": round(a["wall_s"] / b["wall_s"], 2)}
        log(
            f"  {night}: dvc repro {a['wall_s']:.1f} s ({a['peak_rss_tree_mb']:.0f} MB), make -j {jobs} repro "
            f"{b['wall_s']:.1f} s ({b['peak_rss_tree_mb']:.0f} MB): x{out[night]['ratio']}; ran {len(a['ran'])} / "
            f"{len(b['ran'])} stages"
        )
    out["churn"]["changed_repos"] = changed
    same = digests(seq) == digests(par) and metrics(seq) == metrics(par)
    out["checks"] = {
        "returncode_0": all(
            out[n][k]["returncode"] == 0 for n in ("full", "churn", "unchanged") for k in ("dvc_repro", "make_j")
        ),
        "same_digests_and_counts": same,
        "full_ran_every_stage": len(out["full"]["make_j"]["ran"]) == BATCH + 2,
        # an unchanged feed (its ETag tracked by DVC) runs no stage at all, fetch included
        "unchanged_ran_nothing": out["unchanged"]["make_j"]["ran"] == [] and out["unchanged"]["dvc_repro"]["ran"] == [],
    }
    shutil.rmtree(seq, ignore_errors=True)
    shutil.rmtree(par, ignore_errors=True)
    return out


def budget(
    work: Path, feed: Path, env: dict[str, str], *, jobs: list[int], workers: list[int], log: Any
) -> list[dict[str, Any]]:
    """Full cold runs of make -j J repro for every J x ingest.workers W."""
    rows = []
    for w in workers:
        for j in jobs:
            ws = workspace(work / "ws-budget", feed, w)
            r = _run(make_cmd(j), ws, env)
            rows.append(
                {
                    "jobs": j,
                    "workers": w,
                    "in_flight": j * w,
                    **{
                        k: r[k] for k in ("wall_s", "peak_rss_tree_mb", "cpu_s", "returncode", "lock_errors", "metrics")
                    },
                }
            )
            log(
                f"  -j {j:>2} x workers {w}: {r['wall_s']:.1f} s, {r['peak_rss_tree_mb']:.0f} MB peak, "
                f"cpu {r['cpu_s']:.0f} s, rc {r['returncode']}, {r['metrics']}"
            )
    shutil.rmtree(work / "ws-budget", ignore_errors=True)
    return rows


def locks(
    work: Path, feed: Path, env: dict[str, str], *, repetitions: int, jobs: int, workers: int, log: Any
) -> dict[str, Any]:
    """``repetitions`` runs of make -j jobs repro, each re-running every shard: count what went wrong."""
    ws = workspace(work / "ws-locks", feed, workers)
    first = _run(make_cmd(jobs), ws, env)  # clones everything once; the repetitions then serve the digest cache
    counts = {
        "runs": 0,
        "failed_runs": 0,
        "lock_errors": 0,
        "rwlock_corrupt": 0,
        "rwlock_left_held": 0,
        "incomplete_dvc_lock": 0,
        "not_every_shard_ran": 0,
    }
    walls = []
    for i in range(repetitions):
        ratio = 0.5 + (i + 1) / 1000  # a value never run before: no run-cache hit, every shard runs
        update_params(ws / "params.yaml", {"ingest": {"max_failure_ratio": ratio}})
        r = _run(make_cmd(jobs), ws, env)
        counts["runs"] += 1
        counts["failed_runs"] += r["returncode"] != 0
        counts["lock_errors"] += r["lock_errors"]
        counts["not_every_shard_ran"] += len([s for s in r["ran"] if s.startswith("shard@")]) != BATCH
        try:
            held = json.loads((ws / ".dvc" / "tmp" / "rwlock").read_text())
            counts["rwlock_left_held"] += any(held.get(mode) for mode in ("read", "write"))
        except (OSError, json.JSONDecodeError):
            counts["rwlock_corrupt"] += 1
        lock = (ws / "dvc.lock").read_text()
        counts["incomplete_dvc_lock"] += not all(f"  shard@{k}:" in lock for k in range(BATCH))
        walls.append(r["wall_s"])
        log(
            f"  repetition {i + 1}/{repetitions}: {r['wall_s']:.1f} s, rc {r['returncode']}, "
            f"lock errors {r['lock_errors']}, ran {len(r['ran'])} stages"
        )
    shutil.rmtree(ws, ignore_errors=True)
    problems = sum(v for k, v in counts.items() if k != "runs")
    return {
        "jobs": jobs,
        "workers": workers,
        "first_run_s": first["wall_s"],
        **counts,
        "wall_s": walls,
        "passed": problems == 0 and counts["runs"] == repetitions,
    }


def first_repro_both_ways(work: Path, *, entries: int, seed: int, workers: int, jobs: int, log: Any) -> dict[str, Any]:
    """The first repro of a workspace of ``entries`` cached digests: dvc repro, then (in a new workspace reading the
    same pre-filled digest cache) make -j jobs repro. One workspace on disk at a time."""
    root = work / "parallel-scale"
    feed, feed_entries, kinds = dvc_scale.fresh_feed(root, entries, seed)
    cache_dir = (root / "digest-cache").resolve()
    env = dvc_scale.dvc_env()
    out: dict[str, Any] = {"entries": entries, "jobs": jobs, "workers": workers}
    for name, cmd in (("dvc_repro", dvc_cmd()), ("make_j", make_cmd(jobs))):
        ws = workspace(root / "ws", feed, workers)
        update_params(ws / "params.yaml", {"ingest": {"cache": str(cache_dir)}})
        if name == "dvc_repro":
            log(f"  pre-filling the digest cache with {entries} entries ...")
            out["prefill"] = dvc_scale.prefill(ws, feed, cache_dir, seed, kinds, log)
        r = _run(cmd, ws, env)
        out[name] = r
        label = "dvc repro" if name == "dvc_repro" else f"make -j {jobs} repro"
        log(
            f"  first {label}: {r['wall_s']:.1f} s, {r['peak_rss_tree_mb']:.0f} MB peak, rc {r['returncode']}, "
            f"{r['metrics']}"
        )
        shutil.rmtree(ws, ignore_errors=True)
    out["ratio"] = round(out["dvc_repro"]["wall_s"] / out["make_j"]["wall_s"], 2)
    out["checks"] = {
        "returncode_0": out["dvc_repro"]["returncode"] == 0 and out["make_j"]["returncode"] == 0,
        "all_cached": out["dvc_repro"]["metrics"] == out["make_j"]["metrics"]
        and out["make_j"]["metrics"].get("cached") == entries,
    }
    shutil.rmtree(root, ignore_errors=True)
    return out


def run(
    work: Path,
    *,
    repos: int,
    seed: int,
    latency: float,
    tmpdir: str = "",
    jobs: int = 10,
    workers: int = 8,
    churn: float = 0.01,
    budget_jobs: list[int] | None = None,
    budget_workers: list[int] | None = None,
    lock_repetitions: int = 20,
    scale_entries: int = 0,
    log: Any = print,
) -> dict[str, Any]:
    """All of the above on a corpus of ``repos`` repos; ``scale_entries`` 0 leaves out the cached-digest workspace."""
    corpus_dir = work / f"corpus-{repos}-s{seed}"
    log(f"parallel: corpus of {repos} repos (seed {seed}) in {corpus_dir}, {latency * 1000:.0f} ms per request")
    feed, entries = corpus.build_corpus(corpus_dir, repos, seed)
    result: dict[str, Any] = {"repos": repos, "seed": seed, "latency_s": latency, "batch_size": BATCH}
    with GitServer(corpus_dir / "repos", latency=latency, lifetime=4 * 3600) as server:
        env = dvc_scale.dvc_env({**server.git_env(), **({"TMPDIR": tmpdir} if tmpdir else {})})
        log(f"parallel: dvc repro against make -j {jobs} repro (ingest.workers {workers})")
        result["compare"] = compare(work, entries, env, jobs=jobs, workers=workers, churn=churn, log=log)
        if budget_jobs and budget_workers:
            log("parallel: concurrency budget")
            result["budget"] = budget(work, feed, env, jobs=budget_jobs, workers=budget_workers, log=log)
        if lock_repetitions:
            log(f"parallel: {lock_repetitions} repetitions of make -j {jobs} repro, every shard re-run")
            result["locks"] = locks(work, feed, env, repetitions=lock_repetitions, jobs=jobs, workers=workers, log=log)
        result["server"] = server.stats()
    if scale_entries:
        log(f"parallel: first repro of {scale_entries} cached digests, dvc repro against make -j {jobs} repro")
        result["scale"] = first_repro_both_ways(work, entries=scale_entries, seed=seed, workers=16, jobs=jobs, log=log)
    return result


def lines(p: dict[str, Any]) -> list[str]:
    """The table printed at the end of a bench run."""
    c = p["compare"]
    out = [
        f"parallel shards ({p['repos']} repos, {p['batch_size']} shards, {p['latency_s'] * 1000:.0f} ms per "
        f"request, ingest.workers {c['workers']}): dvc repro vs make -j {c['jobs']} repro",
        f"  {'night':<28}{'dvc repro s':>12}{'make -j s':>11}{'ratio':>8}{'RSS MB dvc/make':>18}",
    ]
    for night, label in (
        ("full", "full run"),
        ("churn", f"{c['churn']['changed_repos']} repo(s) pushed (1%)"),
        ("unchanged", "nothing changed"),
    ):
        r = c[night]
        out.append(
            f"  {label:<28}{r['dvc_repro']['wall_s']:>12.1f}{r['make_j']['wall_s']:>11.1f}"
            f"{'x' + str(r['ratio']):>8}{r['dvc_repro']['peak_rss_tree_mb']:>10.0f} / "
            f"{r['make_j']['peak_rss_tree_mb']:.0f}"
        )
    out.append(f"  checks: {c['checks']}")
    if p.get("budget"):
        out.append(
            f"  concurrency budget (full cold run): {'-j':>4}{'workers':>9}{'in flight':>11}{'wall s':>9}"
            f"{'peak RSS MB':>13}{'cpu s':>8}"
        )
        for r in p["budget"]:
            out.append(
                f"  {'':<34}{r['jobs']:>4}{r['workers']:>9}{r['in_flight']:>11}{r['wall_s']:>9.1f}"
                f"{r['peak_rss_tree_mb']:>13.0f}{r['cpu_s']:>8.0f}"
            )
    lk = p.get("locks")
    if lk:
        out.append(
            f"  lock check: {lk['runs']} runs of make -j {lk['jobs']} repro (every shard re-run): "
            f"{lk['failed_runs']} failed, {lk['lock_errors']} lock errors, {lk['rwlock_corrupt']} corrupt "
            f"rwlock, {lk['rwlock_left_held']} rwlock left held, {lk['incomplete_dvc_lock']} incomplete "
            f"dvc.lock, {lk['not_every_shard_ran']} runs without every shard: "
            f"{'passed' if lk['passed'] else 'FAILED'}"
        )
    s = p.get("scale")
    if s:
        out.append(
            f"  first repro of {s['entries']} cached digests: dvc repro {s['dvc_repro']['wall_s']:.1f} s / "
            f"{s['dvc_repro']['peak_rss_tree_mb']:.0f} MB, make -j {s['jobs']} repro "
            f"{s['make_j']['wall_s']:.1f} s / {s['make_j']['peak_rss_tree_mb']:.0f} MB: x{s['ratio']}; "
            f"checks {s['checks']}"
        )
    return out
