"""Scale without network: a 21,000-entry synthetic feed through ``fetch``, every shard's ``--dry-run``, and
``aggregate`` over synthetic stats rows, each as the real CLI in a fresh workspace; with ``dvc``, also
``dvc repro`` / ``dvc status`` on a real DVC workspace holding that many digests (bench/dvc_scale.py)."""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path
from typing import Any

from bench import corpus, dvc_scale, measure
from xgov_digests.core.files import SUMMARIES_DIR, digest_path, summaries_path
from xgov_digests.feed.manifest import manifest_path, read_manifest
from xgov_digests.schemas.stats import Row, stats_path, write_stats

PARAMS = """\
feed:
  url: {feed}
  limit: 0
shards:
  batch_size: {batch}
  offsets: {offsets}
  assign: index
ingest:
  allowed_hosts: [github.com]
"""


def synthetic_rows(ws: Path, batch: int, seed: int) -> int:
    """One stats row per manifest repo, and a digest file per ok/cached row, as a finished shard would write them."""
    rng = random.Random(seed)
    n = 0
    for k in range(batch):
        rows = []
        for repo in read_manifest(ws / manifest_path(k), batch, k):
            status = rng.choices(["ok", "cached", "failed", "empty"], [80, 15, 4, 1])[0]
            clone_s, digest_s = rng.lognormvariate(0, 1), rng.lognormvariate(-3, 1)
            rows.append(
                Row(
                    repo.url,
                    repo.owner,
                    repo.name,
                    k,
                    batch,
                    repo.pushed_at,
                    status=status,
                    error="git clone failed: synthetic" if status == "failed" else None,
                    commit=None if status == "failed" else f"{rng.getrandbits(160):040x}",
                    files=rng.randint(1, 3000),
                    digest_bytes=rng.randint(1000, 524288),
                    truncated=rng.random() < 0.2,
                    clone_s=clone_s,
                    digest_s=digest_s,
                    total_s=clone_s + digest_s,
                )
            )
            if status in ("ok", "cached"):
                out = digest_path(summaries_path(k, ws / SUMMARIES_DIR), repo.owner, repo.name)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(b"synthetic digest\n")
        write_stats(ws / stats_path(k), rows)
        n += len(rows)
    return n


def run(
    work: Path,
    *,
    entries: int = 21_000,
    batch: int = 10,
    seed: int = 7,
    dvc: bool = False,
    dvc_options: dict[str, Any] | None = None,
    log: Any = print,
) -> dict[str, Any]:
    ws = work / "ws-scale"
    shutil.rmtree(ws, ignore_errors=True)
    ws.mkdir(parents=True)
    feed = ws / "repos.json"
    feed.write_text(json.dumps(corpus.synthetic_feed(entries, seed), indent=1), encoding="utf-8")
    (ws / "params.yaml").write_text(PARAMS.format(feed=feed.resolve(), batch=batch, offsets=list(range(batch))))
    env = measure.python_env()
    out: dict[str, Any] = {"entries": entries, "batch_size": batch, "feed_bytes": feed.stat().st_size}

    log(f"scale: python -m stages.fetch on {entries} entries ...")
    m = measure.run([sys.executable, "-m", "stages.fetch"], cwd=ws, env=env)
    snapshot = json.loads((ws / "data" / "repos.json").read_text()) if m.returncode == 0 else []
    out["fetch"] = {**m.summary(), "snapshot_repos": len(snapshot)}
    log(f"  {m.wall_s:.2f} s, {m.peak_rss_tree_mb} MB peak tree RSS, {len(snapshot)} repos")

    dry = []
    for k in range(batch):
        m = measure.run(
            [sys.executable, "-m", "stages.shard", "--batch-size", str(batch), "--offset", str(k), "--dry-run"],
            cwd=ws,
            env=env,
        )
        listed = sum(1 for line in m.stdout.splitlines() if line and not line.startswith("#"))
        dry.append(
            {
                "offset": k,
                "wall_s": m.wall_s,
                "peak_rss_tree_mb": m.peak_rss_tree_mb,
                "listed": listed,
                "returncode": m.returncode,
            }
        )
    out["dry_run"] = {
        "total_wall_s": round(sum(d["wall_s"] for d in dry), 3),
        "max_wall_s": max(d["wall_s"] for d in dry),
        "max_peak_rss_tree_mb": max(d["peak_rss_tree_mb"] for d in dry),
        "listed": sum(d["listed"] for d in dry),
        "per_offset": dry,
    }
    log(f"  dry-run x{batch}: {out['dry_run']['total_wall_s']:.2f} s total, {out['dry_run']['listed']} listed")

    rows = synthetic_rows(ws, batch, seed)
    m = measure.run([sys.executable, "-m", "stages.aggregate"], cwd=ws, env=env)
    metrics = json.loads((ws / "reports" / "metrics.json").read_text()) if m.returncode == 0 else {}
    out["aggregate"] = {**m.summary(), "rows": rows, "metrics_repos": metrics.get("repos")}
    log(f"  aggregate over {rows} rows: {m.wall_s:.2f} s, {m.peak_rss_tree_mb} MB peak")
    out["targets"] = {
        "fetch_le_5s": out["fetch"]["wall_s"] <= 5.0,
        "fetch_le_1GB_rss": out["fetch"]["peak_rss_tree_mb"] <= 1024,
    }
    if dvc:
        out["dvc"] = dvc_scale.run(work, entries=entries, batch=batch, seed=seed, log=log, **(dvc_options or {}))
    return out
