"""The pipeline against its floor: bare parallel clones of the same repos from the same server, in the same run.

For each corpus (the real repositories of bench/real_corpus.py, then the synthetic one of bench/corpus.py), one
git server (``latency`` a request, partial-clone filters allowed as on GitHub) serves, one after the other:

- ``floor``: ``git clone --depth 1`` of every repo, ``concurrency`` at a time, nothing else (bench/floor_clones.py);
- ``seed`` (on the real corpus only, unless asked): the seed-style loop, one repo at a time, ``git clone
  --depth 1`` + stock gitingest (bench/baseline.py);
- ``dvc repro`` and ``make -j jobs repro``, each in its own fresh workspace (default params: ``ingest.workers`` 8,
  ``clone_filter: auto``, 10 shards, a cold digest cache of its own), then in each workspace the 1%-churn night
  (1% of the repos, at least one, get a new ``pushedAt``) and the nothing-changed night.

Every run is timed by bench/measure.py (wall, CPU, peak RSS, and CPU and time alive by process kind: dvc, shard,
digest child, git, python, make/sh; the server's CPU is the harness's own children meanwhile) with the server's
requests and body bytes. Ratios: each run's wall over the floor's, and the seed loop's wall over each run's.
Digests: both workspaces' digests must be byte-identical, and their SHA-256s are recorded, so that another
run's results (``expect``, e.g. of the code before a change) can be compared digest for digest.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from bench import corpus, dvc_scale, measure, parallel, real_corpus
from bench.throughput import compare_bodies
from tests.fixtures.gitserver import GitServer, Reply, Request


class NoObjectInfo(GitServer):
    """A git server that refuses protocol v2's ``object-info``, as GitHub does (git's own upload-pack answered it by
    default from 2.31 to 2.43): a clone then fetches the blobs it keeps to learn their sizes."""

    def before(self, request: Request) -> Reply | None:
        if b"command=object-info" in request.body[:64]:
            return Reply(400, [("Content-Type", "text/plain")], b"object-info not supported\n")
        return None


TARGETS = {"make_x_floor": 1.5, "dvc_over_make": 1.5, "dvc_x_floor": 2.0}


def digest_hashes(ws: Path) -> dict[str, str]:
    base = ws / "data" / "summaries"
    return {str(p.relative_to(base)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(base.rglob("*.txt"))}


def _measured(cmd: list[str], cwd: Path, env: dict[str, str], server: GitServer) -> dict[str, Any]:
    requests, sent = server.requests, server.bytes_sent
    m = measure.run(cmd, cwd=cwd, env=env, timeout=3600)
    return {
        "wall_s": m.wall_s,
        "cpu_s": m.cpu_s,
        "server_cpu_s": m.other_children_cpu_s,
        "peak_rss_tree_mb": m.peak_rss_tree_mb,
        "returncode": m.returncode,
        "by_kind": m.by_kind,
        "requests": server.requests - requests,
        "bytes_sent": server.bytes_sent - sent,
        "ran": sorted(parallel._ran(m.stdout)),
        "stdout_tail": m.stdout[-300:],
        "stderr_tail": m.stderr_tail[-600:] if m.returncode else "",
    }


def one_corpus(
    work: Path,
    label: str,
    feed: Path,
    entries: list[dict[str, Any]],
    repos_dir: Path,
    *,
    latency: float,
    concurrency: int,
    jobs: int,
    tmpdir: str,
    seed_loop: bool,
    log: Any,
    object_info: bool = True,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "corpus": label,
        "repos": len(entries),
        "concurrency": concurrency,
        "jobs": jobs,
        "object_info": object_info,
    }
    with (GitServer if object_info else NoObjectInfo)(repos_dir, latency=latency, lifetime=3 * 3600) as server:
        extra = {**server.git_env(), **({"TMPDIR": tmpdir} if tmpdir else {})}
        py_env, dvc_env = measure.python_env(extra), dvc_scale.dvc_env(extra)
        runs: dict[str, dict[str, Any]] = {}
        runs["floor"] = _measured(
            [sys.executable, "-m", "bench.floor_clones", "--feed", str(feed), "--concurrency", str(concurrency)],
            measure.ROOT,
            py_env,
            server,
        )
        log(f"  {label}: floor ({concurrency} clones at a time) {runs['floor']['wall_s']:.1f} s")
        if seed_loop:
            seed_out = work / f"seed-{label}"
            shutil.rmtree(seed_out, ignore_errors=True)
            runs["seed"] = _measured(
                [sys.executable, "-m", "bench.baseline", "--feed", str(feed), "--out", str(seed_out)],
                measure.ROOT,
                py_env,
                server,
            )
            log(f"  {label}: seed loop {runs['seed']['wall_s']:.1f} s")
        ws_dvc = parallel.workspace(work / f"ws-{label}-dvc", feed, 8)
        ws_make = parallel.workspace(work / f"ws-{label}-make", feed, 8)
        for ws in (ws_dvc, ws_make):  # default params: the workspace helper sets ingest.workers; take params.yaml's
            parallel.update_params(ws / "params.yaml", {"ingest": {"workers": default_workers()}})
        pushed, changed = parallel._push(entries, 0.01, "2030-01-01T00:00:00Z")
        for night, night_feed in (("full", entries), ("churn", pushed), ("unchanged", pushed)):
            feed.write_text(json.dumps(night_feed, indent=1), encoding="utf-8")
            for key, ws, cmd in (("dvc", ws_dvc, parallel.dvc_cmd()), ("make", ws_make, parallel.make_cmd(jobs))):
                r = _measured(cmd, ws, dvc_env, server)
                r["metrics"] = parallel.metrics(ws)
                runs[f"{key}_{night}"] = r
                log(
                    f"  {label}: {night} night, {'dvc repro' if key == 'dvc' else f'make -j {jobs} repro'} "
                    f"{r['wall_s']:.1f} s, rc {r['returncode']}, {r['metrics']}"
                )
            if night == "full":
                out["digests"] = digest_hashes(ws_dvc)
                out["same_digests_dvc_make"] = out["digests"] == digest_hashes(ws_make)
                if seed_loop:
                    out["bodies_vs_seed"] = _bodies(work / f"seed-{label}", ws_dvc)
        feed.write_text(json.dumps(entries, indent=1), encoding="utf-8")
        out["churn_changed"] = changed
        out["server"] = server.stats()
    for ws in (ws_dvc, ws_make):
        shutil.rmtree(ws, ignore_errors=True)
    shutil.rmtree(work / f"seed-{label}", ignore_errors=True)
    floor = runs["floor"]["wall_s"]
    n = max(1, len(entries))
    for r in runs.values():
        r["x_floor"] = round(r["wall_s"] / floor, 2)
        # per repo: what the feed's size multiplies (a night's figures are over every repo of the feed too)
        r["wall_s_per_repo"], r["cpu_s_per_repo"] = round(r["wall_s"] / n, 4), round(r["cpu_s"] / n, 4)
        r["bytes_sent_per_repo"] = r["bytes_sent"] // n
        r["cpu_x_floor"] = round(r["cpu_s"] / max(runs["floor"]["cpu_s"], 1e-9), 2)
        if "seed" in runs:
            r["x_seed"] = round(runs["seed"]["wall_s"] / r["wall_s"], 2)
    out["runs"] = runs
    out["dvc_over_make"] = round(runs["dvc_full"]["wall_s"] / runs["make_full"]["wall_s"], 2)
    out["checks"] = {
        "returncode_0": all(r["returncode"] == 0 for r in runs.values()),
        "same_digests_dvc_make": out["same_digests_dvc_make"],
        "all_ok_full": all(runs[k]["metrics"].get("failed") == 0 for k in ("dvc_full", "make_full")),
        # the feed is a dependency tracked by its ETag: an unchanged feed runs no stage at all, fetch included
        "unchanged_ran_nothing": runs["dvc_unchanged"]["ran"] == [] and runs["make_unchanged"]["ran"] == [],
    }
    return out


def _bodies(seed_dir: Path, ws: Path) -> dict[str, int]:
    total: dict[str, int] = {}
    for shard in sorted((ws / "data" / "summaries").glob("shard-*")):
        for k, v in compare_bodies(seed_dir, shard).items():
            total[k] = total.get(k, 0) + v
    return total


def default_workers() -> int:
    from xgov_digests.core.params import load_params

    return load_params(measure.ROOT / "params.yaml").ingest.workers


def compare_expected(result: dict[str, Any], expect: dict[str, Any]) -> dict[str, Any]:
    """This run against ``expect`` (another run's results): digests digest for digest, and each run's wall as a
    multiple of its own run's floor, this run's over the other's (<= 1: no slower relative to the floor)."""
    out: dict[str, Any] = {"expect_commit": expect.get("machine", {}).get("commit")}
    for label, c in result["corpora"].items():
        e = expect.get("corpora", {}).get(label)
        if not e:
            continue
        same = c["digests"] == e["digests"]
        differ = sorted(k for k in set(c["digests"]) | set(e["digests"]) if c["digests"].get(k) != e["digests"].get(k))
        out[label] = {
            "digests_identical": same,
            "digests_compared": len(c["digests"]),
            "different": differ[:20],
            "x_floor_now_over_then": {
                k: round(r["x_floor"] / e["runs"][k]["x_floor"], 2)
                for k, r in c["runs"].items()
                if k in e["runs"] and k != "floor"
            },
        }
    return out


def targets(result: dict[str, Any]) -> dict[str, Any]:
    real = result["corpora"].get("real")
    if not real:
        return {}
    runs = real["runs"]
    return {
        "make_j_x_floor_real": {
            "value": runs["make_full"]["x_floor"],
            "target": "<= 1.5",
            "met": runs["make_full"]["x_floor"] <= TARGETS["make_x_floor"],
        },
        "dvc_over_make_real": {
            "value": real["dvc_over_make"],
            "target": ">= 1.5",
            "met": real["dvc_over_make"] >= TARGETS["dvc_over_make"],
        },
        "dvc_x_floor_real": {
            "value": runs["dvc_full"]["x_floor"],
            "target": "<= 2",
            "met": runs["dvc_full"]["x_floor"] <= TARGETS["dvc_x_floor"],
        },
    }


def run(
    work: Path,
    *,
    latency: float,
    concurrency: int,
    jobs: int,
    tmpdir: str,
    synthetic_repos: int,
    seed: int,
    mirrors: Path | None,
    copies: int,
    seed_loop: bool,
    synthetic_seed_loop: bool = False,
    object_info: bool = True,
    log: Any = print,
) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"latency_s": latency, "corpora": {}}
    feed, entries, desc = real_corpus.build(work / "real-corpus", mirrors, copies)
    log(
        f"floor: real corpus, {len(entries)} repos ({len(desc['repos'])} x {copies} owners, {desc['files']} files, "
        f"{desc['bytes'] / 1e6:.0f} MB at their tips)"
    )
    result["corpora"]["real"] = {
        **one_corpus(
            work,
            "real",
            feed,
            entries,
            work / "real-corpus" / "repos",
            latency=latency,
            concurrency=concurrency,
            jobs=jobs,
            tmpdir=tmpdir,
            seed_loop=seed_loop,
            log=log,
            object_info=object_info,
        ),
        "files": desc["files"],
        "bytes": desc["bytes"],
    }
    if synthetic_repos:
        cdir = work / f"corpus-{synthetic_repos}-s{seed}"
        feed, entries = corpus.build_corpus(cdir, synthetic_repos, seed)
        local = work / "synthetic-feed.json"  # the nights rewrite the feed: keep the corpus' own intact
        local.write_text(json.dumps(entries, indent=1), encoding="utf-8")
        log(f"floor: synthetic corpus, {len(entries)} repos (seed {seed})")
        result["corpora"]["synthetic"] = one_corpus(
            work,
            "synthetic",
            local,
            entries,
            cdir / "repos",
            latency=latency,
            concurrency=concurrency,
            jobs=jobs,
            tmpdir=tmpdir,
            seed_loop=seed_loop and synthetic_seed_loop,
            log=log,
            object_info=object_info,
        )
    return result


ROWS = (
    ("seed", "seed-style loop"),
    ("dvc_full", "dvc repro"),
    ("make_full", "make -j {jobs} repro"),
    ("floor", "floor: git clone --depth 1, {concurrency} at a time"),
    ("dvc_churn", "1% churn night: dvc repro"),
    ("make_churn", "1% churn night: make -j {jobs}"),
    ("dvc_unchanged", "nothing changed: dvc repro"),
    ("make_unchanged", "nothing changed: make -j {jobs}"),
)


def lines(result: dict[str, Any]) -> list[str]:
    out = []
    for label, c in result["corpora"].items():
        out.append(f"{label} corpus: {c['repos']} repos, {result['latency_s'] * 1000:.0f} ms a request")
        out.append(
            f"  {'run':<48}{'wall s':>8}{'x floor':>9}{'x seed':>8}{'cpu s':>8}{'server':>8}{'MB sent':>9}"
            f"{'requests':>9}{'wall/repo':>10}{'cpu/repo':>9}{'cpu x fl':>9}"
        )
        n = max(1, c["repos"])
        for key, name in ROWS:
            r = c["runs"].get(key)
            if r:
                seed = f"{r['x_seed']:.2f}" if "x_seed" in r else "-"
                cpu_x = r["cpu_s"] / max(c["runs"]["floor"]["cpu_s"], 1e-9)
                out.append(
                    f"  {name.format(**c):<48}{r['wall_s']:>8.1f}{r['x_floor']:>9.2f}{seed:>8}"
                    f"{r['cpu_s']:>8.1f}{r['server_cpu_s']:>8.1f}"
                    f"{r['bytes_sent'] / 1e6:>9.1f}{r['requests']:>9}"
                    f"{r['wall_s'] / n:>10.3f}{r['cpu_s'] / n:>9.3f}{cpu_x:>9.2f}"
                )
        out.append(f"  dvc repro / make -j: {c['dvc_over_make']}x; checks {c['checks']}")
        for key in ("dvc_full", "make_full"):
            kinds = c["runs"][key]["by_kind"]
            out.append(
                f"  {key} by process kind (processes, cpu s, busy s): "
                + "; ".join(f"{k} {v['processes']}, {v['cpu_s']}, {v['busy_s']}" for k, v in kinds.items())
            )
            for kind in ("dvc", "python"):  # the interpreters that are neither a stage's work nor git
                if kind in kinds and "commands" in kinds[kind]:
                    out.append(
                        f"    {kind} processes by command (processes, cpu s): "
                        + "; ".join(f"{c} {n}, {cpu}" for c, (n, cpu) in kinds[kind]["commands"].items())
                    )
    for name, t in result.get("targets", {}).items():
        out.append(f"target {name}: {'MET' if t['met'] else 'NOT MET'} ({t['value']}, {t['target']})")
    for label, e in result.get("against", {}).items():
        if isinstance(e, dict):
            out.append(
                f"against {result['against'].get('expect_commit')}: {label} digests identical "
                f"{e['digests_identical']} ({e['digests_compared']}); x floor now/then "
                f"{e['x_floor_now_over_then']}"
            )
    return out
