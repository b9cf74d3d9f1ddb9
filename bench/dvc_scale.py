"""``dvc repro`` and ``dvc status`` on a real workspace holding 21,000 digests, without cloning 21,000 repos.

A real DVC workspace (``tests.fixtures.workspace.create_workspace``: the pipeline copied into a new git repo, params
overridden) gets a synthetic feed of ``https://github.com/<owner>/<name>`` entries, each with a ``pushedAt``, and a
local digest cache (``ingest.cache``) pre-filled with one valid entry per repo, written through
``xgov_digests.shard.cache.DigestCache.put``. Every repo is then served from the cache (status ``cached``, no
clone); git's ``insteadOf`` points github.com at a closed port on 127.0.0.1, so nothing can reach the network.

Measured (wall time and peak RSS of the whole process tree):

1. the first ``dvc repro``: ``fetch``, 10 shards serving 21,000 cached digests, ``aggregate``;
2. a nothing-changed ``dvc repro``: nothing runs (the feed's hash in ``dvc.lock`` is unchanged);
3. ``dvc status``;
4. optionally (``churn``), the nightly case at this scale: 1% of the repos get a new ``pushedAt`` and are really
   cloned from the local git server (latency per request), each a symlink to a corpus repo; the rest stay cached;
5. one shard's process on its own (``python -m stages.shard --offset 0`` on its 2,100 cached repos), to split
   the first repro between the shard processes and DVC.

Digest sizes follow the corpus' kinds (bench/corpus.py) and what the pipeline measured on them: tiny repos about
13 KB, small 150 KB, binary-heavy 64 KB, medium and large cut at ``max_summary_bytes``; 21,000 digests are about
3.6 GB, written three times (the cache, the workspace, DVC's cache). The workspace is deleted afterwards unless
``keep``.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import corpus, measure

OFFLINE_GIT = {  # as tests/conftest.py: github.com is rewritten to a closed local port
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "url.http://127.0.0.1:9/.insteadOf",
    "GIT_CONFIG_VALUE_0": "https://github.com/",
}
# Digest bytes by corpus kind: (median, lognormal sigma); None = cut at max_summary_bytes. Medians measured on the
# quick corpus' digests (tiny 13 KB, small 151 KB, binary 64 KB; every medium and large repo is cut at the cap).
SIZES: dict[str, tuple[int, float] | None] = {
    "tiny": (13_000, 0.55),
    "small": (150_000, 0.45),
    "binary": (64_000, 0.3),
    "medium": None,
    "large": None,
}


def dvc_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """As a user runs ``dvc repro``: the venv first on PATH, no PYTHONHASHSEED (the shard CLI pins it itself, by
    re-executing), no PYTHONPATH (the workspace's own copy of stages/ and xgov_digests/ runs)."""
    env = measure.python_env(OFFLINE_GIT)
    env.pop("PYTHONHASHSEED", None)
    env.pop("PYTHONPATH", None)
    env.update(extra or {})
    return env


def fresh_feed(root: Path, entries: int, seed: int) -> tuple[Path, list[dict[str, Any]], dict[str, str]]:
    """An emptied ``root`` holding a synthetic feed of ``entries`` repos: (its path, its entries, URL -> repo kind)."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    feed = root / "repos.json"
    feed_entries = corpus.synthetic_feed(entries, seed)
    feed.write_text(json.dumps(feed_entries, indent=1), encoding="utf-8")
    kinds = {
        f"https://github.com/{e['owner']}/{e['name']}".lower(): corpus.spec(seed, i).kind
        for i, e in enumerate(feed_entries)
    }
    return feed, feed_entries, kinds


def _filler(rng: random.Random, size: int) -> bytes:
    return corpus._text(rng, size).encode()


def prefill(ws: Path, feed: Path, cache_dir: Path, seed: int, kinds: dict[str, str], log: Any) -> dict[str, Any]:
    """One valid cache entry per repo of the feed, through ``DigestCache.put``: what a finished night leaves, its
    token count included (a night after a first counted one counts only the repos it clones)."""
    from xgov_digests.core.params import load_params
    from xgov_digests.digest.format import Header, render_header, truncate
    from xgov_digests.digest.tokens import count_tokens
    from xgov_digests.feed.snapshot import parse_feed
    from xgov_digests.shard.cache import DigestCache, Entry, fingerprint

    params = load_params(ws / "params.yaml")
    cap = params.ingest.max_summary_bytes
    cache = DigestCache(str(cache_dir), fingerprint(params.ingest))
    repos = parse_feed(feed.read_bytes()).repos
    rng = random.Random(f"{seed}:dvc-scale")
    block = _filler(rng, cap + 4096)  # one body text sliced per repo: the header makes every digest distinct

    def entry(i: int) -> tuple[int, bool]:
        repo = repos[i]
        r = random.Random(f"{seed}:{i}:digest")
        size_spec = SIZES[kinds.get(repo.key, "tiny")]
        size = cap + 1 if size_spec is None else int(r.lognormvariate(0, size_spec[1]) * size_spec[0])
        commit = f"{r.getrandbits(160):040x}"
        files = r.randint(2, 3000)
        head = render_header(Header(repo.owner, repo.name, repo.url, commit, repo.pushed_at), files)
        tree = f"Directory structure:\n└── {repo.name}/\n    └── README.md\n\n"
        section = "================================================\nFILE: README.md\n" + "=" * 48 + "\n"
        data = (head + "\n" + tree + section).encode()
        data += block[: max(0, min(size, cap + 1) - len(data))]
        data, truncated = truncate(data, cap)
        tokens = {params.ingest.token_encoding: count_tokens(data, params.ingest.token_encoding)}
        cache.put(repo, Entry(data, commit, files, truncated, tokens=tokens))
        return len(data), truncated

    start = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:  # sha256, the token count and file writes release the GIL
        done = list(pool.map(entry, range(len(repos))))
    took = time.perf_counter() - start
    total = sum(n for n, _ in done)
    log(f"  cache pre-filled: {len(done)} entries, {total / 1e9:.2f} GB, {took:.1f} s")
    return {"entries": len(done), "bytes": total, "truncated": sum(1 for _, t in done if t), "wall_s": round(took, 2)}


def _metrics(ws: Path) -> dict[str, Any]:
    path = ws / "reports" / "metrics.json"
    if not path.exists():
        return {}
    m = json.loads(path.read_text())
    return {k: m.get(k) for k in ("repos", "ok", "cached", "failed", "empty", "digest_bytes", "truncated")}


def _ran(stdout: str) -> list[str]:
    return [ln.split("'")[1] for ln in stdout.splitlines() if ln.startswith("Running stage '")]


def _step(name: str, m: measure.Measurement, **extra: Any) -> dict[str, Any]:
    out = {**m.summary(), "ran": _ran(m.stdout), "stdout_tail": m.stdout[-1500:], **extra}
    return out


def _churn_root(
    root: Path, corpus_dir: Path, changed: list[dict[str, Any]], spec_entries: list[dict[str, Any]]
) -> Path:
    """A git server root where each changed repo ``<owner>/<name>`` is a symlink to a corpus repo."""
    served = root / "served"
    shutil.rmtree(served, ignore_errors=True)
    for i, e in enumerate(changed):
        src = spec_entries[i % len(spec_entries)]
        target = (corpus_dir / "repos" / src["owner"] / src["name"]).resolve()
        link = served / e["owner"] / e["name"]
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target, target_is_directory=True)
    return served


def run(
    work: Path,
    *,
    entries: int = 21_000,
    batch: int = 10,
    seed: int = 7,
    workers: int = 16,
    churn: float = 0.0,
    corpus_dir: Path | None = None,
    latency: float = 0.1,
    tmpdir: str = "",
    cache_type: str = "",
    keep: bool = False,
    log: Any = print,
) -> dict[str, Any]:
    from tests.fixtures.workspace import create_workspace

    root = work / "dvc-scale"
    feed, feed_entries, kinds = fresh_feed(root, entries, seed)
    cache_dir = root / "digest-cache"
    ws = create_workspace(
        root / "ws",
        {
            "feed": {"url": str(feed.resolve())},
            "shards": {"batch_size": batch, "offsets": list(range(batch)), "assign": "index"},
            "ingest": {
                "allowed_hosts": ["github.com"],
                "allow_file_urls": False,
                "cache": str(cache_dir.resolve()),
                "workers": workers,
            },
        },
    )
    out: dict[str, Any] = {
        "entries": entries,
        "batch_size": batch,
        "workers": workers,
        "feed_bytes": feed.stat().st_size,
        "dvc_cache_type": cache_type or "(DVC's default)",
    }
    log(f"dvc-scale: {entries} entries, {batch} shards, workspace {ws}")
    out["prefill"] = prefill(ws, feed, cache_dir, seed, kinds, log)
    dvc = str(Path(sys.executable).parent / "dvc")
    env = dvc_env({"TMPDIR": tmpdir} if tmpdir else {})
    if cache_type:  # a what-if: how DVC links outputs to its cache (reflink, hardlink, symlink, copy)
        subprocess.run([dvc, "config", "--local", "cache.type", cache_type], cwd=ws, env=env, check=True)

    log("  dvc repro (first: every repo from the digest cache) ...")
    m = measure.run([dvc, "repro"], cwd=ws, env=env, timeout=3600)
    first = out["first_repro"] = _step("first", m, metrics=_metrics(ws))
    log(f"  {m.wall_s:.1f} s, {m.peak_rss_tree_mb} MB peak, rc {m.returncode}, metrics {first['metrics']}")
    fm = first["metrics"]
    first["checks"] = {
        "returncode_0": m.returncode == 0,
        "all_cached": fm.get("cached") == entries and fm.get("repos") == entries,
        "no_clone": fm.get("ok") == 0 and fm.get("failed") == 0 and fm.get("empty") == 0,
        "every_stage_ran": len(first["ran"]) == batch + 2,
    }

    log("  dvc repro (nothing changed) ...")
    m = measure.run([dvc, "repro"], cwd=ws, env=env, timeout=1800)
    noop = out["noop_repro"] = _step("noop", m)
    noop["checks"] = {
        "returncode_0": m.returncode == 0,
        "nothing_ran": noop["ran"] == [],
        "shards_skipped": all(f"Stage 'shard@{k}' didn't change, skipping" in m.stdout for k in range(batch)),
        "aggregate_skipped": "Stage 'aggregate' didn't change, skipping" in m.stdout,
    }
    log(f"  {m.wall_s:.2f} s, {m.peak_rss_tree_mb} MB peak, ran {noop['ran']}, checks {noop['checks']}")

    log("  dvc status ...")
    m = measure.run([dvc, "status"], cwd=ws, env=env, timeout=1800)
    status = out["status"] = _step("status", m)
    status["checks"] = {
        "returncode_0": m.returncode == 0,
        "up_to_date": "Data and pipelines are up to date" in m.stdout,
    }
    log(f"  {m.wall_s:.2f} s, {m.peak_rss_tree_mb} MB peak: {m.stdout.strip()[:200]!r}")

    if churn:
        out["churn"] = _churn(root, ws, feed, feed_entries, corpus_dir, churn, latency, env, dvc, log)

    log("  one shard on its own: python -m stages.shard --batch-size N --offset 0 (every repo cached) ...")
    m = measure.run(
        [sys.executable, "-m", "stages.shard", "--batch-size", str(batch), "--offset", "0"], cwd=ws, env=env
    )
    out["one_shard"] = {
        **m.summary(),
        "repos": len(json.loads((ws / "data" / "manifests" / "shard-0.json").read_text())["repos"]),
    }
    log(f"  {m.wall_s:.2f} s for {out['one_shard']['repos']} repos, {m.peak_rss_tree_mb} MB peak")

    out["checks_passed"] = all(
        all(step["checks"].values()) for step in (first, noop, status, *([out["churn"]] if churn else []))
    )
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    return out


def _churn(
    root: Path,
    ws: Path,
    feed: Path,
    feed_entries: list[dict[str, Any]],
    corpus_dir: Path | None,
    churn: float,
    latency: float,
    env: dict[str, str],
    dvc: str,
    log: Any,
) -> dict[str, Any]:
    """The nightly case at scale: ``churn`` of the repos pushed (cloned for real from the local git server)."""
    from tests.fixtures.gitserver import GitServer

    if corpus_dir is None:
        raise ValueError("churn needs a corpus to serve the changed repos from")
    corpus_entries = json.loads((corpus_dir / "feed.json").read_text())
    n = max(1, round(len(feed_entries) * churn))
    step = len(feed_entries) / n
    picked = sorted({int(i * step) for i in range(n)})
    changed = [feed_entries[i] for i in picked]
    served = _churn_root(root, corpus_dir, changed, corpus_entries)
    pushed = set(picked)
    next_night = [dict(e, pushedAt="2030-01-01T00:00:00Z") if i in pushed else e for i, e in enumerate(feed_entries)]
    feed.write_text(json.dumps(next_night, indent=1), encoding="utf-8")
    log(
        f"  dvc repro after {len(picked)} of {len(feed_entries)} repos were pushed (cloned from the local server, "
        f"{latency * 1000:.0f} ms per request) ..."
    )
    with GitServer(served, latency=latency, lifetime=3600) as server:
        m = measure.run([dvc, "repro"], cwd=ws, env={**env, **server.git_env()}, timeout=3600)
        requests = server.requests
    result = _step("churn", m, metrics=_metrics(ws), changed=len(picked), server_requests=requests)
    mm = result["metrics"]
    result["checks"] = {
        "returncode_0": m.returncode == 0,
        "changed_cloned": mm.get("ok") == len(picked) and mm.get("failed") == 0,
        "rest_cached": mm.get("cached") == len(feed_entries) - len(picked),
    }
    log(
        f"  {m.wall_s:.1f} s, {m.peak_rss_tree_mb} MB peak, ran {len(result['ran'])} stages, metrics {mm}, "
        f"checks {result['checks']}"
    )
    return result
