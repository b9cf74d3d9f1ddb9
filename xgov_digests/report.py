"""Totals over the stats rows: the DVC metrics and the markdown report."""

from __future__ import annotations

from typing import Any

import pandas as pd


def _totals(frame: pd.DataFrame) -> dict[str, Any]:
    counts = frame["status"].value_counts()
    n = len(frame)
    cached = int(counts.get("cached", 0))
    return {
        "repos": n,
        "processed": int(n - counts.get("failed", 0)),
        "ok": int(counts.get("ok", 0)),
        "cached": cached,
        "failed": int(counts.get("failed", 0)),
        "empty": int(counts.get("empty", 0)),
        "cache_hits": cached,
        "cache_misses": n - cached,
        "cache_hit_rate": round(cached / n, 4) if n else 0.0,
        "digest_bytes": int(frame["digest_bytes"].sum()),
        "truncated": int(frame["truncated"].sum()),
        "walk_limited": int(frame["walk_limit"].notna().sum()),
        "p50_total_s": round(float(frame["total_s"].quantile(0.5)), 3) if n else 0.0,
        "p95_total_s": round(float(frame["total_s"].quantile(0.95)), 3) if n else 0.0,
    }


def metrics(frame: pd.DataFrame, offsets: list[int]) -> dict[str, Any]:
    """Totals for the whole run and for each shard (keyed by offset)."""
    out = _totals(frame)
    out["shards"] = {str(k): _totals(frame[frame["offset"] == k]) for k in offsets}
    return out


def markdown(m: dict[str, Any], frame: pd.DataFrame, batch_size: int) -> str:
    cols = ["repos", "ok", "cached", "failed", "empty", "cache_hit_rate", "digest_bytes", "truncated", "p95_total_s"]
    lines = [
        f"# Digest run: {m['repos']} repos in {batch_size} shards",
        "",
        f"{m['processed']} processed ({m['ok']} digested, {m['cached']} from cache, {m['empty']} empty), "
        f"{m['failed']} failed; cache hit rate {m['cache_hit_rate']:.1%}.",
        "",
        "| shard | " + " | ".join(cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for k, s in m["shards"].items():
        lines.append(f"| {k} | " + " | ".join(str(s[c]) for c in cols) + " |")
    lines.append("| all | " + " | ".join(str(m[c]) for c in cols) + " |")
    failed = frame[frame["status"] == "failed"].sort_values("url")
    lines += ["", f"## Failures ({len(failed)})", ""]
    if failed.empty:
        lines.append("None.")
    for row in failed.itertuples():
        error = str(row.error).replace("|", "\\|").replace("\n", " ")
        lines.append(f"- shard {row.offset}: `{row.owner}/{row.name}` ({row.url}): {error}")
    return "\n".join(lines) + "\n"
