"""Totals over the stats rows: the DVC metrics (flat totals), the per-shard table, the plot data and the report."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from xgov_digests.core.files import digest_path, summaries_path

FAILURE_KINDS = ("transient", "permanent", "internal")  # the stats' failure_kind values, in the report's order

PERCENTILES = list(range(0, 101))  # the rows of the distribution files: one per percentile of the repos
SHARD_COLUMNS = [
    "shard",
    "offset",
    "wall_s",
    "repos",
    "ok",
    "cached",
    "empty",
    "failed",
    "failed_transient",
    "failed_permanent",
    "failed_internal",
    "digest_bytes",
    "truncated",
    "p50_total_s",
    "p95_total_s",
]
TOP_REASONS = 12  # failure reasons plotted one by one; the rest are summed as "other"


def _counts(frame: pd.DataFrame) -> dict[str, int]:
    counts = frame["status"].value_counts()
    return {s: int(counts.get(s, 0)) for s in ("ok", "cached", "empty", "failed")}


def _kinds(frame: pd.DataFrame) -> dict[str, int]:
    kinds = frame.loc[frame["status"] == "failed", "failure_kind"].value_counts()
    return {f"failed_{kind}": int(kinds.get(kind, 0)) for kind in FAILURE_KINDS}


def metrics(frame: pd.DataFrame, batch_size: int) -> dict[str, Any]:
    """The run's totals, flat: what a person compares night to night (``dvc metrics diff``). No timings: they
    differ on every run; they are in the per-shard table and the distribution files."""
    n = len(frame)
    c = _counts(frame)
    return {
        "repos": n,
        "processed": n - c["failed"],
        **c,
        "cache_hit_rate": round(c["cached"] / n, 4) if n else 0.0,
        **_kinds(frame),
        "digest_bytes": int(frame["digest_bytes"].sum()),
        **token_totals(frame),
        "truncated": int(frame["truncated"].sum()),
        "walk_limited": int(frame["walk_limit"].notna().sum()),
        "shards": batch_size,
    }


def token_totals(frame: pd.DataFrame) -> dict[str, int]:
    """The digests' tokens (``ingest.token_encoding``): in all, the median digest's and the largest digest's."""
    tokens = frame.loc[frame["status"].isin(["ok", "cached"]), "tokens"]
    if tokens.empty:
        return {"tokens": 0, "tokens_median": 0, "tokens_max": 0}
    return {"tokens": int(tokens.sum()), "tokens_median": int(tokens.median()), "tokens_max": int(tokens.max())}


def _quantile(series: pd.Series, q: float) -> float:
    return round(float(series.quantile(q)), 3) if len(series) else 0.0


def shard_table(frame: pd.DataFrame, offsets: list[int], walls: dict[int, float | None]) -> pd.DataFrame:
    """One row per shard: wall time, repo counts by status, bytes, truncations and per-repo seconds (p50, p95)."""
    width = len(str(max(offsets, default=0)))
    rows = []
    for k in offsets:
        part = frame[frame["offset"] == k]
        rows.append(
            {
                "shard": str(k).zfill(width),  # zero-padded: a plot's category axis sorts it as a number
                "offset": k,
                "wall_s": round(walls[k], 3) if walls.get(k) is not None else None,
                "repos": len(part),
                **_counts(part),
                **_kinds(part),
                "digest_bytes": int(part["digest_bytes"].sum()),
                "truncated": int(part["truncated"].sum()),
                "p50_total_s": _quantile(part["total_s"], 0.5),
                "p95_total_s": _quantile(part["total_s"], 0.95),
            }
        )
    return pd.DataFrame(rows, columns=SHARD_COLUMNS)


def seconds_distribution(frame: pd.DataFrame) -> pd.DataFrame:
    """Clone and digest seconds of the repos cloned in this run (status ``ok``) at each percentile."""
    done = frame[frame["status"] == "ok"]
    if done.empty:
        return pd.DataFrame(columns=["percentile", "clone_s", "digest_s"])
    return pd.DataFrame(
        {
            "percentile": PERCENTILES,
            "clone_s": [_quantile(done["clone_s"], p / 100) for p in PERCENTILES],
            "digest_s": [_quantile(done["digest_s"], p / 100) for p in PERCENTILES],
        }
    )


def size_distribution(frame: pd.DataFrame, cap_bytes: int) -> pd.DataFrame:
    """Digest sizes (KB) of the run's digests at each percentile, beside the cap (``ingest.max_summary_bytes``), and
    their tokens (thousands)."""
    digested = frame[frame["status"].isin(["ok", "cached"])]
    kb, ktokens = digested["digest_bytes"] / 1024, digested["tokens"] / 1000
    if kb.empty:
        return pd.DataFrame(columns=["percentile", "digest_kb", "cap_kb", "tokens_k"])
    return pd.DataFrame(
        {
            "percentile": PERCENTILES,
            "digest_kb": [_quantile(kb, p / 100) for p in PERCENTILES],
            "cap_kb": round(cap_bytes / 1024, 3),
            "tokens_k": [_quantile(ktokens, p / 100) for p in PERCENTILES],
        }
    )


def failure_reason(kind: object, error: object) -> str:
    """A failure's kind and the first clause of its message, with URLs, paths and numbers taken out, so that the
    failures of many repos group into a few reasons."""
    text = re.sub(r"\S+://\S+|(?<!\w)/\S+", "…", str(error or "no message"))
    text = re.sub(r"\d+(\.\d+)?", "N", text).split(": ")[0].strip()
    return f"{kind if isinstance(kind, str) else 'unclassified'}: {text[:60]}"


def failure_reasons(frame: pd.DataFrame) -> pd.DataFrame:
    """Failed repos by reason, the most frequent first (ties by name); beyond the top few, one "other" row."""
    failed = frame[frame["status"] == "failed"]
    reasons = pd.Series(
        [failure_reason(k, e) for k, e in zip(failed["failure_kind"], failed["error"], strict=True)], dtype="object"
    )
    counts = sorted(reasons.value_counts().items(), key=lambda kv: (-kv[1], kv[0]))
    rows = [{"reason": r, "repos": int(n)} for r, n in counts[:TOP_REASONS]]
    if rest := sum(n for _, n in counts[TOP_REASONS:]):
        rows.append({"reason": "other", "repos": int(rest)})
    return pd.DataFrame(rows, columns=["reason", "repos"])


def markdown(m: dict[str, Any], shards: pd.DataFrame, frame: pd.DataFrame) -> str:
    cols = ["repos", "ok", "cached", "failed", "empty", "digest_bytes", "truncated", "p95_total_s", "wall_s"]
    lines = [
        f"# Digest run: {m['repos']} repos in {m['shards']} shards",
        "",
        f"{m['processed']} processed ({m['ok']} digested, {m['cached']} from cache, {m['empty']} empty), "
        f"{m['failed']} failed; cache hit rate {m['cache_hit_rate']:.1%}. Seconds a repo: "
        f"p50 {_quantile(frame['total_s'], 0.5)}, p95 {_quantile(frame['total_s'], 0.95)}.",
        "",
        "| shard | " + " | ".join(cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for s in shards.itertuples():
        lines.append(f"| {s.offset} | " + " | ".join(str(getattr(s, c)) for c in cols) + " |")
    totals = {**m, "p95_total_s": _quantile(frame["total_s"], 0.95), "wall_s": ""}
    lines.append("| all | " + " | ".join(str(totals[c]) for c in cols) + " |")
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


def digest_index(frame: pd.DataFrame) -> dict[str, str]:
    """``owner/name`` -> the path of its digest in this run, for the repos that have one (``ok`` or ``cached``)."""
    has = frame[frame["status"].isin(["ok", "cached"])]
    return {
        f"{r.owner}/{r.name}": digest_path(summaries_path(r.offset), r.owner, r.name).as_posix()
        for r in has.itertuples()
    }
