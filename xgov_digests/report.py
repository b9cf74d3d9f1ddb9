"""Totals over the stats rows: the DVC metrics and the markdown report."""

from __future__ import annotations

from typing import Any

import pandas as pd

FAILURE_KINDS = ("transient", "permanent", "internal")  # the stats' failure_kind values, in the report's order


def _totals(frame: pd.DataFrame) -> dict[str, Any]:
    counts = frame["status"].value_counts()
    kinds = frame.loc[frame["status"] == "failed", "failure_kind"].value_counts()
    n = len(frame)
    cached = int(counts.get("cached", 0))
    return {
        "repos": n,
        "processed": int(n - counts.get("failed", 0)),
        "ok": int(counts.get("ok", 0)),
        "cached": cached,
        "failed": int(counts.get("failed", 0)),
        "empty": int(counts.get("empty", 0)),
        **{f"failed_{kind}": int(kinds.get(kind, 0)) for kind in FAILURE_KINDS},
        "cache_hits": cached,
        "cache_misses": n - cached,
        "cache_hit_rate": round(cached / n, 4) if n else 0.0,
        "digest_bytes": int(frame["digest_bytes"].sum()),
        "truncated": int(frame["truncated"].sum()),
        "p50_total_s": round(float(frame["total_s"].quantile(0.5)), 3) if n else 0.0,
        "p95_total_s": round(float(frame["total_s"].quantile(0.95)), 3) if n else 0.0,
    }


def metrics(frame: pd.DataFrame, offsets: list[int]) -> dict[str, Any]:
    """Totals for the whole run and for each shard (keyed by offset)."""
    out = _totals(frame)
    out["shards"] = {str(k): _totals(frame[frame["offset"] == k]) for k in offsets}
    return out


def markdown(m: dict[str, Any], frame: pd.DataFrame, batch_size: int) -> str:
    cols = ["repos", "ok", "cached", "failed", "failed_transient", "failed_permanent", "empty", "cache_hit_rate",
            "digest_bytes", "truncated", "p95_total_s"]  # fmt: skip
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
    by_kind = ", ".join(f"{m[f'failed_{kind}']} {kind}" for kind in FAILURE_KINDS if m[f"failed_{kind}"])
    lines += ["", f"## Failures ({len(failed)}{': ' + by_kind if by_kind else ''})", ""]
    if failed.empty:
        lines.append("None.")
    kind_of = failed["failure_kind"].fillna("")
    groups = [(kind, failed[kind_of == kind]) for kind in FAILURE_KINDS]
    groups.append(("unclassified", failed[~kind_of.isin(FAILURE_KINDS)]))
    for kind, rows in groups:
        if rows.empty:
            continue
        lines += [f"### {kind.capitalize()} ({len(rows)})", "", _KIND_NOTES.get(kind, "No failure kind recorded."), ""]
        for row in rows.itertuples():
            error = str(row.error).replace("|", "\\|").replace("\n", " ")
            lines.append(f"- shard {row.offset}: `{row.owner}/{row.name}` ({row.url}): {error}")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


_KIND_NOTES = {
    "transient": "No complete answer from the server after the retries (network, DNS, TLS, timeout, 429, 5xx).",
    "permanent": "The server answered with an error (not found, authentication, a broken repository), the URL "
    "policy rejected the URL, or the digest failed on the repository's content.",
    "internal": "An unexpected error in the pipeline.",
}
