"""One shard's cost, this tree's code against another tree's, alternating, on the real corpus.

python -m bench shard-cost --against DIR [--repos 24] [--rounds 5] [--copies 15] [--latency 0.1] [--tmpdir auto]

``DIR`` is a checkout of the commit to compare with (``git worktree add /tmp/base <commit>``). The real corpus
(bench/real_corpus.py, ``copies`` owners) is served by the bench's git server at ``latency`` a request, and the
clones go under ``tmpdir`` (tmpfs where there is one, as in the floor suite). Two workspaces are made (default
params, no digest cache): one whose shard 0 holds ``repos`` repos, and one whose shard 0 holds a single repo, which
shows what a shard costs before its repos (interpreter, imports, token vocabulary, digest processes). Each round
runs shard 0 of each workspace as ``dvc repro`` would (``python -m stages.shard`` in the workspace, which imports
the workspace's copy of ``stages/`` and ``xgov_digests/``), once with each tree's copy, the order alternating by
round so that a busy moment on the machine hits both alike. Reported, per shape and tree: wall and CPU by process
kind (bench/measure.py) of every run and their medians, the ratios of the medians (this tree over the other), and
whether every run of both trees wrote the same digests (SHA-256; shard 0's outputs are removed before each run).
"""

from __future__ import annotations

import shutil
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import dvc_scale, measure, parallel, real_corpus
from bench.floor import default_workers, digest_hashes
from tests.fixtures.gitserver import GitServer

CODE = ("stages", "xgov_digests")  # what a workspace holds of the code, and what a shard runs
KINDS = ("shard", "digest child", "git", "python")  # the shard's process tree (bench/measure.py's kinds)


def _use_code(ws: Path, tree: Path) -> None:
    """``tree``'s code in the workspace, and shard 0's outputs removed, as ``dvc repro`` removes them."""
    for name in CODE:
        shutil.rmtree(ws / name, ignore_errors=True)
        shutil.copytree(tree / name, ws / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.rmtree(ws / "data" / "summaries" / "shard-0", ignore_errors=True)
    (ws / "data" / "stats" / "shard-0.parquet").unlink(missing_ok=True)


def _workspace(path: Path, feed: Path, batch_size: int, env: dict[str, str]) -> Path:
    ws = parallel.workspace(path, feed, 8)
    shards = {"batch_size": batch_size, "offsets": list(range(batch_size))}
    ingest = {"workers": default_workers(), "cache": ""}  # the default workers; no digest cache: every repo cloned
    parallel.update_params(ws / "params.yaml", {"ingest": ingest, "shards": shards})
    dvc = measure.run([str(parallel.VENV / "bin" / "dvc"), "repro", "fetch"], cwd=ws, env=env)
    if dvc.returncode:
        raise RuntimeError(f"dvc repro fetch in {ws}: {dvc.stderr_tail[-500:]}")
    return ws


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 3)


def run(
    work: Path,
    against: Path,
    *,
    repos: int = 24,
    rounds: int = 5,
    copies: int = 15,
    latency: float = 0.1,
    mirrors: Path | None = None,
    tmpdir: str = "",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    for name in CODE:
        if not (against / name).is_dir():
            raise SystemExit(f"shard-cost: {against} has no {name}/: give a checkout of the commit to compare with")
    feed, entries, _ = real_corpus.build(work / "real-corpus", mirrors, copies)
    shapes = {"repos": -(-len(entries) // max(1, repos)), "one_repo": len(entries)}  # batch sizes
    trees = {"this": measure.ROOT, "other": against.resolve()}
    out: dict[str, Any] = {"against": str(trees["other"]), "rounds": rounds, "tmpdir": tmpdir, "shapes": {}}
    with GitServer(work / "real-corpus" / "repos", latency=latency, lifetime=3 * 3600) as server:
        extra = {**server.git_env(), "PYTHONHASHSEED": "0", **({"TMPDIR": tmpdir} if tmpdir else {})}
        env = dvc_scale.dvc_env(extra)
        for shape, batch_size in shapes.items():
            ws = _workspace(work / f"ws-{shape}", feed, batch_size, env)
            runs: dict[str, list[dict[str, Any]]] = {"this": [], "other": []}
            first: dict[str, str] | None = None  # the first run's digests, which every run of either tree must write
            same = True
            cmd = [sys.executable, "-m", "stages.shard", "--batch-size", str(batch_size), "--offset", "0"]
            for r in range(rounds):
                for tree in ("this", "other") if r % 2 == 0 else ("other", "this"):
                    _use_code(ws, trees[tree])
                    m = measure.run(cmd, cwd=ws, env=env)
                    if m.returncode:
                        raise RuntimeError(f"shard with {trees[tree]}'s code: {m.stderr_tail[-500:]}")
                    cpu = {k: m.by_kind.get(k, {}).get("cpu_s", 0.0) for k in KINDS}
                    runs[tree].append(
                        {
                            "wall_s": round(m.wall_s, 3),
                            "cpu_s": round(sum(cpu.values()), 2),
                            "shard_cpu_s": cpu["shard"],
                            "digest_child_cpu_s": cpu["digest child"],
                        }
                    )
                    got = digest_hashes(ws)  # shard 0's only: the other shards never run here
                    first = got if first is None else first
                    same = same and got == first
                    log(f"  {shape} ({len(got)} repos), {tree} tree: {runs[tree][-1]}")
            medians = {
                tree: {k: _median(rs, k) for k in ("wall_s", "cpu_s", "shard_cpu_s", "digest_child_cpu_s")}
                for tree, rs in runs.items()
            }
            out["shapes"][shape] = {
                "batch_size": batch_size,
                "repos_in_shard": len(first or {}),
                "runs": runs,
                "medians": medians,
                "this_over_other": {
                    k: round(medians["this"][k] / v, 2) if v else None for k, v in medians["other"].items()
                },
                "same_digests": same and bool(first),
            }
            shutil.rmtree(ws, ignore_errors=True)
    return out


def lines(result: dict[str, Any]) -> str:
    rows = [f"shard-cost: this tree against {result['against']}, {result['rounds']} rounds, medians"]
    for shape, s in result["shapes"].items():
        t, o, ratio = s["medians"]["this"], s["medians"]["other"], s["this_over_other"]
        rows.append(
            f"  {shape} ({s['repos_in_shard']} repos in the shard): wall {t['wall_s']} / {o['wall_s']} s "
            f"({ratio['wall_s']}x), CPU {t['cpu_s']} / {o['cpu_s']} s ({ratio['cpu_s']}x), of it digest processes "
            f"{t['digest_child_cpu_s']} / {o['digest_child_cpu_s']} s; same digests: {s['same_digests']}"
        )
    return "\n".join(rows)
