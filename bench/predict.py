"""The full feed predicted from a floor-suite run (``python -m bench``): wall time of a full run and of a 1%-churn
night for ``repos`` repos on C cores and an L bit/s link.

python -m bench predict bench/results/floor.json [MORE.json ...] [--repos 21000] [--cores 2 8 32] [--links ...]

Given several results, each corpus is predicted from the run with the most repos (the shards' and dvc's start-ups,
fixed per run, weigh less in its per-repo figures).

Model (each term from the run's measured figures for ``make -j`` on the chosen corpus, per repo):

- CPU: (CPU of the full run - CPU of the nothing-changed night) / repos, on C cores: repos x cpu / C. This
  counts every process of the run (dvc, shard interpreters, digest children, git), and the server's CPU not at all.
- link: repos x body bytes sent a repo / (L / 8).
- round trips: repos x requests a repo x ``rtt`` / clones in flight (-j x ``ingest.workers``).
- fixed: the nothing-changed night's wall time (fetch, dvc's checks), plus DVC hashing and caching every digest
  one stage at a time, which no core count shortens (``serial_s_per_repo`` x repos; 35 s for 21,000 digests,
  bench/README.md's dvc-scale split).

A full run takes the largest of the first three (they overlap) plus the fixed part. A night clones ``churn`` x
repos and serves the rest from the digest cache: its cloning terms are those of the cloned repos, plus rewriting
every cached digest (``hit_s`` of CPU each, measured at 21,000 in dvc-scale: 27 s of shard processes for 21,000
hits) over C cores, plus the serial DVC hashing of every output, as a full run's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

RTT_S = 0.1
SERIAL_S_PER_REPO = 35.0 / 21_000  # DVC hashing + caching of outputs, one stage at a time (dvc-scale split)
HIT_CPU_S = 27.0 / 21_000  # a shard serving one repo from the digest cache: read, verify, rewrite (dvc-scale)


def per_repo(result: dict[str, Any], corpus: str) -> dict[str, float]:
    c = result["corpora"][corpus]
    full, noop = c["runs"]["make_full"], c["runs"]["make_unchanged"]
    n = c["repos"]
    return {
        "cpu_s": max(0.0, full["cpu_s"] - noop["cpu_s"]) / n,
        "bytes": full["bytes_sent"] / n,
        "requests": full["requests"] / n,
        "fixed_s": noop["wall_s"],
        "repos_measured": n,
    }


def largest(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One result holding, for each corpus, the run with the most repos of ``results``: its per-repo figures are the
    least inflated by the fixed start-ups of the shards and of ``dvc``."""
    corpora: dict[str, Any] = {}
    for result in results:
        for label, c in result.get("corpora", {}).items():
            if label not in corpora or c["repos"] > corpora[label]["repos"]:
                corpora[label] = c
    return {"corpora": corpora}


def predict(
    costs: dict[str, float], *, repos: int, cores: int, link_bps: float, in_flight: int, churn: float = 0.01
) -> dict[str, float]:
    def cloning(n: float) -> float:
        return max(
            n * costs["cpu_s"] / cores, n * costs["bytes"] / (link_bps / 8), n * costs["requests"] * RTT_S / in_flight
        )

    serial = repos * SERIAL_S_PER_REPO
    full = cloning(repos) + costs["fixed_s"] + serial
    changed = max(1.0, repos * churn)
    night = cloning(changed) + (repos - changed) * HIT_CPU_S / cores + costs["fixed_s"] + serial
    return {"full_s": full, "night_s": night}


def table(result: dict[str, Any], *, repos: int, cores: list[int], links: list[float], in_flight: int) -> list[str]:
    out = []
    for corpus in result["corpora"]:
        costs = per_repo(result, corpus)
        out.append(
            f"{corpus} corpus: {costs['cpu_s']:.3f} s CPU, {costs['bytes'] / 1e6:.2f} MB, "
            f"{costs['requests']:.1f} requests a repo; fixed {costs['fixed_s']:.1f} s"
        )
        out.append("| cores | link | full run | 1%-churn night |")
        out.append("|---:|---:|---:|---:|")
        for c in cores:
            for link in links:
                p = predict(costs, repos=repos, cores=c, link_bps=link, in_flight=in_flight)
                full, night = p["full_s"] / 60, p["night_s"] / 60
                out.append(f"| {c} | {link / 1e9:g} Gbit/s | {full:.0f} min | {night:.1f} min |")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "results",
        type=Path,
        nargs="+",
        help="floor-suite results; each corpus is predicted from the run with the most repos",
    )
    parser.add_argument("--repos", type=int, default=21_000)
    parser.add_argument("--cores", type=int, nargs="+", default=[2, 8, 32])
    parser.add_argument("--links", type=float, nargs="+", default=[100e6, 1e9, 10e9])
    parser.add_argument("--in-flight", type=int, default=80, help="clones in flight: -j x ingest.workers (80)")
    args = parser.parse_args(argv)
    result = largest([json.loads(p.read_text(encoding="utf-8")) for p in args.results])
    print("\n".join(table(result, repos=args.repos, cores=args.cores, links=args.links, in_flight=args.in_flight)))
    return 0
