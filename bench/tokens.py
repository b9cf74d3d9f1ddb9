"""What the token count costs a shard: the same shard run with the count and without it, alternating, same corpus.

Each round runs ``python -m stages.shard --batch-size 1 --offset 0`` twice in a fresh workspace with a cold digest
cache, on the seeded corpus behind the git server (latency per request): once as it ships, once with
``xgov_digests.digest.tokens.count_tokens`` replaced by a function returning 0 (a ``sitecustomize`` module on the
run's PYTHONPATH, imported before the shard's own modules; the vocabulary is then never loaded either). The order
alternates by round, so a busy moment on the machine hits both alike. Reported: every run's wall and CPU, the
medians, the ratio of the medians and of the best runs, and checks that both modes wrote the same digests (bytes
and SHA-256) and that only the first counted tokens.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import corpus, measure
from bench.throughput import read_stats, workspace
from tests.fixtures.gitserver import GitServer

NO_COUNT = "import xgov_digests.digest.tokens as tokens\n\ntokens.count_tokens = lambda data, name: 0\n"
MAX_BYTES = 524_288  # the default max_file_size and max_summary_bytes


def run(
    work: Path,
    repos: int = 40,
    rounds: int = 6,
    workers: int = 8,
    seed: int = 7,
    latency: float = 0.1,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    feed, _ = corpus.build_corpus(work / f"corpus-{repos}-s{seed}", repos, seed)
    patch = work / "no-count"
    patch.mkdir(parents=True, exist_ok=True)
    (patch / "sitecustomize.py").write_text(NO_COUNT)
    runs: dict[str, list[dict[str, Any]]] = {"count": [], "no_count": []}
    digests: dict[str, set[tuple[str, str]]] = {}
    with GitServer(work / f"corpus-{repos}-s{seed}" / "repos", latency=latency, lifetime=7200) as server:
        for r in range(rounds):
            for mode in ("count", "no_count") if r % 2 == 0 else ("no_count", "count"):
                extra = dict(server.git_env())
                if mode == "no_count":
                    extra["PYTHONPATH"] = f"{patch}:{measure.ROOT}"
                ws = workspace(work / f"ws-{mode}", feed, MAX_BYTES, MAX_BYTES)
                argv = [sys.executable, "-m", "stages.shard", "--batch-size", "1", "--offset", "0"]
                argv += ["--feed", str(feed.resolve()), "--workers", str(workers)]
                m = measure.run(argv, cwd=ws, env=measure.python_env(extra))
                frame = read_stats(ws)
                ok = frame[frame["status"] == "ok"]
                digests[mode] = {(f"{o.owner}/{o.name}", o.sha256) for o in ok.itertuples()}
                runs[mode].append(
                    {
                        "wall_s": round(m.wall_s, 2),
                        "cpu_s": round(m.cpu_s, 2),
                        "ok": len(ok),
                        "tokens": int(frame["tokens"].sum()),
                        "digest_bytes": int(frame["digest_bytes"].sum()),
                        "returncode": m.returncode,
                    }
                )
                log(f"  round {r + 1}/{rounds} {mode}: {runs[mode][-1]}")
    walls = {mode: [x["wall_s"] for x in rs] for mode, rs in runs.items()}
    median = {mode: round(statistics.median(w), 2) for mode, w in walls.items()}
    best = {mode: min(w) for mode, w in walls.items()}
    return {
        "repos": repos,
        "rounds": rounds,
        "workers": workers,
        "latency_s": latency,
        "runs": runs,
        "median_wall_s": median,
        "best_wall_s": best,
        "count_over_no_count_median": round(median["count"] / median["no_count"], 3),
        "count_over_no_count_best": round(best["count"] / best["no_count"], 3),
        "checks": {
            "every_run_succeeded": all(x["returncode"] == 0 for rs in runs.values() for x in rs),
            "every_repo_ok": all(x["ok"] == repos for rs in runs.values() for x in rs),
            "same_digests": digests["count"] == digests["no_count"],
            "counted_only_with_the_count": all(x["tokens"] > 0 for x in runs["count"])
            and all(x["tokens"] == 0 for x in runs["no_count"]),
        },
    }
