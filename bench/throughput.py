"""Throughput: the field's baseline against the pipeline's shard runner, over the local git server.

Both clone ``https://github.com/<owner>/<name>`` URLs from the same feed; git's ``insteadOf`` sends them to the
server on 127.0.0.1, which adds the configured latency to every request. The pipeline runs as the real CLI,
``python -m stages.shard --batch-size 1 --offset 0 --feed FEED --workers W``, in a fresh workspace whose
params.yaml keeps ``ingest.allowed_hosts: [github.com]``.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from bench import corpus, measure
from tests.fixtures.gitserver import GitServer

PARAMS = """\
feed:
  url: {feed}
  limit: 0
shards:
  batch_size: 1
  offsets: [0]
ingest:
  workers: 8
  max_file_size: {max_file_size}
  max_summary_bytes: {max_summary_bytes}
  clone_timeout: 300
  retries: 2
  max_failure_ratio: 0.5
  allowed_hosts: [github.com]
  allow_file_urls: false
  cache: {cache}
"""


def workspace(path: Path, feed: Path, max_file_size: int, max_summary_bytes: int) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    (path / "params.yaml").write_text(
        PARAMS.format(
            feed=feed.resolve(),
            max_file_size=max_file_size,
            max_summary_bytes=max_summary_bytes,
            cache=(path / ".cache" / "digests").resolve(),
        )
    )
    return path


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {
        "sum": round(sum(ordered), 3),
        "p50": round(statistics.median(ordered), 4),
        "p95": round(pick(0.95), 4),
        "max": round(ordered[-1], 4),
    }


def read_stats(ws: Path) -> pd.DataFrame:
    """The shard's stats, or an empty frame when the run failed before writing them."""
    path = ws / "data" / "stats" / "shard-0.parquet"
    return pd.read_parquet(path) if path.exists() else pd.DataFrame(columns=["status"])


def where_time_goes(frame: pd.DataFrame, kinds: dict[str, str], top: int = 5) -> dict[str, Any]:
    """clone_s / digest_s / total_s over the repos, and the slowest repos (from a shard's stats parquet)."""
    out: dict[str, Any] = {c: _quantiles(frame[c].astype(float).tolist()) for c in ("clone_s", "digest_s", "total_s")}
    slow = frame.sort_values("total_s", ascending=False).head(top)
    out["slowest"] = [
        {
            "repo": f"{r.owner}/{r.name}",
            "kind": kinds.get(f"{r.owner}/{r.name}", "?"),
            "status": r.status,
            "files": int(r.files),
            "digest_bytes": int(r.digest_bytes),
            "truncated": bool(r.truncated),
            "clone_s": round(float(r.clone_s), 3),
            "digest_s": round(float(r.digest_s), 3),
            "total_s": round(float(r.total_s), 3),
        }
        for r in slow.itertuples()
    ]
    return out


def compare_bodies(baseline_dir: Path, summaries: Path) -> dict[str, int]:
    """Below our header, a digest must be gitingest's own bytes: count matches (truncated ones excepted)."""
    same = differ = truncated = missing = 0
    for ours in summaries.glob("*/*.txt"):
        theirs = baseline_dir / ours.parent.name / ours.name
        if not theirs.exists():
            missing += 1
            continue
        data = ours.read_bytes()
        if data.rstrip(b"\n").endswith(b"by ingest.max_summary_bytes]"):
            truncated += 1
            continue
        body = data.split(b"\n\n", 1)[1]
        if body == theirs.read_bytes():
            same += 1
        else:
            differ += 1
    return {"identical": same, "different": differ, "truncated_not_compared": truncated, "missing": missing}


def run(
    work: Path,
    *,
    repos: int,
    seed: int,
    workers: list[int],
    latency: float,
    bandwidth: float,
    max_file_size: int = 524288,
    max_summary_bytes: int = 524288,
    tmpdir: str = "",
    log: Any = print,
) -> dict[str, Any]:
    corpus_dir = work / f"corpus-{repos}-s{seed}"
    log(f"corpus: {repos} repos (seed {seed}) in {corpus_dir}")
    feed, entries = corpus.build_corpus(corpus_dir, repos, seed)
    info = json.loads((corpus_dir / "corpus.json").read_text())
    kinds = {f"{r['owner']}/{r['name']}": r["kind"] for r in info["repos"]}
    sizes = [corpus.tree_stats(corpus_dir / "repos" / e["owner"] / e["name"]) for e in entries]
    result: dict[str, Any] = {
        "corpus": {
            "repos": repos,
            "seed": seed,
            "kinds": info["kinds"],
            "files": sum(s["files"] for s in sizes),
            "bytes": sum(s["bytes"] for s in sizes),
            "max_depth": max(s["depth"] for s in sizes),
        },
        "server": {"latency_s": latency, "bandwidth_bytes_per_s": bandwidth},
        "params": {"max_file_size": max_file_size, "max_summary_bytes": max_summary_bytes},
        "tmpdir": tmpdir or "(system default)",
    }
    with GitServer(corpus_dir / "repos", latency=latency, bandwidth=bandwidth, lifetime=3 * 3600) as server:
        # Both sides clone into TMPDIR and delete the checkout afterwards (see bench/README.md on /tmp vs tmpfs).
        env = measure.python_env({**server.git_env(), **({"TMPDIR": tmpdir} if tmpdir else {})})
        base_out = work / "baseline-out"
        shutil.rmtree(base_out, ignore_errors=True)
        log("baseline: sequential git clone + stock gitingest ...")
        m = measure.run(
            [
                sys.executable,
                "-m",
                "bench.baseline",
                "--feed",
                str(feed),
                "--out",
                str(base_out),
                "--max-file-size",
                str(max_file_size),
                "--times",
                str(work / "baseline-times.jsonl"),
            ],
            cwd=measure.ROOT,
            env=env,
        )
        times = [json.loads(line) for line in (work / "baseline-times.jsonl").read_text().splitlines()]
        ok = sum(1 for t in times if t["status"] == "ok")
        result["baseline"] = {
            **m.summary(),
            "ok": ok,
            "repos_per_s": round(len(entries) / m.wall_s, 3),
            "clone_s": _quantiles([t["clone_s"] for t in times]),
            "digest_s": _quantiles([t["digest_s"] for t in times]),
        }
        log(f"  {m.wall_s:.1f} s, {ok}/{len(entries)} ok, {m.peak_rss_tree_mb} MB peak")
        runs = []
        for w in workers:
            ws = workspace(work / f"ws-w{w}", feed, max_file_size, max_summary_bytes)
            log(f"pipeline: python -m stages.shard --workers {w} ...")
            m = measure.run(
                [
                    sys.executable,
                    "-m",
                    "stages.shard",
                    "--batch-size",
                    "1",
                    "--offset",
                    "0",
                    "--feed",
                    str(feed.resolve()),
                    "--workers",
                    str(w),
                ],
                cwd=ws,
                env=env,
            )
            frame = read_stats(ws)
            counts = frame["status"].value_counts().to_dict()
            entry = {
                "workers": w,
                **m.summary(),
                "statuses": {k: int(v) for k, v in counts.items()},
                "repos_per_s": round(len(entries) / m.wall_s, 3),
                "speedup_vs_baseline": round(result["baseline"]["wall_s"] / m.wall_s, 2),
                "where_time_goes": where_time_goes(frame, kinds) if len(frame) else {},
                "bodies_vs_baseline": compare_bodies(base_out, ws / "data" / "summaries" / "shard-0"),
            }
            runs.append(entry)
            log(
                f"  {m.wall_s:.1f} s ({entry['speedup_vs_baseline']}x baseline), statuses {entry['statuses']}, "
                f"{m.peak_rss_tree_mb} MB peak, bodies {entry['bodies_vs_baseline']}"
            )
        result["pipeline"] = runs
        result["server"].update(server.stats())
        # --- (3) incremental runs: the digest cache (ingest.cache, xgov_digests/shard/cache.py) ----------------------
        result["incremental"] = incremental(work, feed, entries, env, max_file_size, max_summary_bytes, log)
    return result


def _best(cmd: list[str], ws: Path, env: dict[str, str], repeat: int) -> measure.Measurement:
    runs = [measure.run(cmd, cwd=ws, env=env) for _ in range(repeat)]
    return min(runs, key=lambda m: m.wall_s)


def incremental(
    work: Path,
    feed: Path,
    entries: list[dict[str, Any]],
    env: dict[str, str],
    max_file_size: int,
    max_summary_bytes: int,
    log: Any,
    churn: float = 0.01,
    workers: int = 16,
    repeat: int = 3,
) -> dict[str, Any]:
    """On one workspace and digest cache (``ingest.cache``), over the same server, the full (cold)
    run; a re-run after ``churn`` of the repos (at least one) got a new ``pushedAt``; a re-run with nothing changed.

    Then the shard CLI's fixed start-up, best of ``repeat``: the same command on a one-repo feed whose digest is
    cached, with PYTHONHASHSEED=0 preset (as in these runs) and without it (as ``dvc repro`` runs it: the CLI
    re-executes itself once to pin the seed)."""
    ws = workspace(work / "ws-incremental", feed, max_file_size, max_summary_bytes)
    n_changed = max(1, round(len(entries) * churn))
    step = len(entries) / n_changed
    picked = {int(i * step) for i in range(n_changed)}  # spread over the feed, as real pushes are
    pushed = [dict(e, pushedAt="2030-01-01T00:00:00Z") if i in picked else e for i, e in enumerate(entries)]
    feed_churn = ws / "feed-churn.json"
    feed_churn.write_text(json.dumps(pushed, indent=1), encoding="utf-8")
    feed_one = ws / "feed-one.json"
    feed_one.write_text(json.dumps(pushed[:1], indent=1), encoding="utf-8")
    base = [
        sys.executable,
        "-m",
        "stages.shard",
        "--batch-size",
        "1",
        "--offset",
        "0",
        "--workers",
        str(workers),
        "--feed",
    ]
    out: dict[str, Any] = {"repos": len(entries), "workers": workers, "churn": churn, "changed_repos": len(picked)}
    for name, f in (("full", feed), ("churn", feed_churn), ("unchanged", feed_churn)):
        m = measure.run([*base, str(f.resolve())], cwd=ws, env=env)
        statuses = {k: int(v) for k, v in read_stats(ws)["status"].value_counts().items()}
        out[name] = {**m.summary(), "statuses": statuses}
        log(f"incremental {name}: {m.wall_s:.2f} s, statuses {statuses}")
    startup = _best([*base, str(feed_one.resolve())], ws, env, repeat)
    no_seed = {k: v for k, v in env.items() if k != "PYTHONHASHSEED"}
    startup_dvc = _best([*base, str(feed_one.resolve())], ws, no_seed, repeat)
    modules = "stages.shard, xgov_digests.shard.run, xgov_digests.shard.cache, xgov_digests.schemas.stats"
    imports = _best([sys.executable, "-c", f"import {modules}"], ws, env, repeat)
    full, churned, unchanged = out["full"]["wall_s"], out["churn"]["wall_s"], out["unchanged"]["wall_s"]
    out["startup"] = {
        "one_cached_repo_s": startup.wall_s,
        "one_cached_repo_reexec_s": startup_dvc.wall_s,
        "imports_s": imports.wall_s,
        "share_of_churn_run": round(startup.wall_s / churned, 3),
    }
    out["churn_x_full"] = round(churned / full, 4)
    out["unchanged_x_full"] = round(unchanged / full, 4)
    out["churn_x_full_without_startup"] = round(max(0.0, churned - startup.wall_s) / (full - startup.wall_s), 4)
    seen = out["churn"]["statuses"]
    expected = seen.get("ok", 0) == len(picked) and seen.get("cached", 0) == len(entries) - len(picked)
    out["status"] = (
        "measured"
        if expected and out["unchanged"]["statuses"].get("cached") == len(entries)
        else ("unexpected statuses: is ingest.cache wired into xgov_digests/shard/run.py?")
    )
    log(
        f"incremental: full {full:.2f} s, {len(picked)} of {len(entries)} pushed {churned:.2f} s "
        f"({out['churn_x_full']:.1%} of full), nothing changed {unchanged:.2f} s; fixed start-up "
        f"{startup.wall_s:.2f} s ({startup_dvc.wall_s:.2f} s with the seed re-exec), imports {imports.wall_s:.2f} s"
    )
    return out
