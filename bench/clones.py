"""Bytes and time of the clone strategies: baseline, ``ingest.clone_filter: off`` and ``auto`` on the same corpus.

The git server allows partial-clone filters as GitHub does and counts the bytes it sends; each setting runs with
no bandwidth cap and with an aggregate cap shared by every response (one machine's link). The pipeline is the real
shard CLI; after each pair of runs the off and auto digests are compared byte for byte.

python -m bench clones --repos 40 --latency 0.1 --link 20e6 --workers 8
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from bench import corpus, measure
from bench.throughput import PARAMS, read_stats
from tests.fixtures.gitserver import GitServer

MODES = ("off", "auto")


def _workspace(path: Path, feed: Path, mode: str, workers: int, max_file_size: int, max_summary_bytes: int) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    text = PARAMS.format(
        feed=feed.resolve(),
        max_file_size=max_file_size,
        max_summary_bytes=max_summary_bytes,
        cache=(path / ".cache" / "digests").resolve(),
    )
    text = text.replace("  workers: 8\n", f"  workers: {workers}\n") + f"  clone_filter: {mode}\n"
    (path / "params.yaml").write_text(text, encoding="utf-8")
    return path


def _digests(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.txt"))}


def _one(server: GitServer, cmd: list[str], cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    bytes_before, requests_before = server.bytes_sent, server.requests
    m = measure.run(cmd, cwd=cwd, env=env)
    return {
        "wall_s": m.wall_s,
        "bytes_sent": server.bytes_sent - bytes_before,
        "requests": server.requests - requests_before,
        "returncode": m.returncode,
        "cpu_s": m.cpu_s,
        "server_cpu_s": m.other_children_cpu_s,
    }


def run(
    work: Path,
    *,
    repos: int,
    seed: int,
    latency: float,
    links: list[float],
    workers: int = 8,
    max_file_size: int = 524288,
    max_summary_bytes: int = 524288,
    tmpdir: str = "",
    baseline: bool = True,
    log: Any = print,
) -> dict[str, Any]:
    corpus_dir = work / f"corpus-{repos}-s{seed}"
    log(f"corpus: {repos} repos (seed {seed}) in {corpus_dir}")
    feed, entries = corpus.build_corpus(corpus_dir, repos, seed)
    sizes = [corpus.tree_stats(corpus_dir / "repos" / e["owner"] / e["name"]) for e in entries]
    result: dict[str, Any] = {
        "corpus": {
            "repos": repos,
            "seed": seed,
            "files": sum(s["files"] for s in sizes),
            "bytes": sum(s["bytes"] for s in sizes),
        },
        "latency_s": latency,
        "workers": workers,
        "runs": [],
    }
    for link in links:
        label = f"{link / 1e6:g} MB/s link" if link else "no cap"
        with GitServer(corpus_dir / "repos", latency=latency, link_bandwidth=link, lifetime=3 * 3600) as server:
            env = measure.python_env({**server.git_env(), **({"TMPDIR": tmpdir} if tmpdir else {})})
            row: dict[str, Any] = {"link_bytes_per_s": link, "label": label}
            if baseline:
                out = work / "clones-baseline-out"
                shutil.rmtree(out, ignore_errors=True)
                log(f"[{label}] baseline: sequential git clone + stock gitingest ...")
                row["baseline"] = _one(
                    server,
                    [
                        sys.executable,
                        "-m",
                        "bench.baseline",
                        "--feed",
                        str(feed),
                        "--out",
                        str(out),
                        "--max-file-size",
                        str(max_file_size),
                    ],
                    measure.ROOT,
                    env,
                )
            digests = {}
            for mode in MODES:
                ws = _workspace(work / f"clones-ws-{mode}", feed, mode, workers, max_file_size, max_summary_bytes)
                log(f"[{label}] pipeline: clone_filter {mode}, workers {workers} ...")
                row[mode] = _one(
                    server,
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
                    ],
                    ws,
                    env,
                )
                row[mode]["statuses"] = {k: int(v) for k, v in read_stats(ws)["status"].value_counts().items()}
                digests[mode] = _digests(ws / "data" / "summaries" / "shard-0")
                log(f"  {row[mode]}")
            row["digests_identical"] = len(digests["off"]) == repos and digests["off"] == digests["auto"]
            row["auto_bytes_x_off"] = round(row["auto"]["bytes_sent"] / row["off"]["bytes_sent"], 3)
            row["auto_wall_x_off"] = round(row["auto"]["wall_s"] / row["off"]["wall_s"], 3)
            result["runs"].append(row)
    return result


def lines(cl: dict[str, Any]) -> list[str]:
    """The bytes-and-times table."""
    c = cl["corpus"]
    out = [
        f"clone strategies: {c['repos']} repos ({c['files']} files, {c['bytes'] / 1e6:.0f} MB in work trees), "
        f"{cl['latency_s'] * 1000:.0f} ms per request, shard workers {cl['workers']}",
        f"  {'link':<16}{'run':<22}{'MB sent':>9}{'requests':>10}{'wall s':>9}{'x off (bytes, wall)':>22}",
    ]
    for r in cl["runs"]:
        for name in ("baseline", *MODES):
            if name not in r:
                continue
            x = r[name]
            ratio = (
                f"{x['bytes_sent'] / r['off']['bytes_sent']:.2f}, {x['wall_s'] / r['off']['wall_s']:.2f}"
                if name != "off"
                else "1, 1"
            )
            run = "baseline (sequential)" if name == "baseline" else f"clone_filter {name}"
            out.append(
                f"  {r['label']:<16}{run:<22}{x['bytes_sent'] / 1e6:>9.1f}{x['requests']:>10}"
                f"{x['wall_s']:>9.1f}{ratio:>22}"
            )
        out.append(f"  {r['label']:<16}digests off == auto: {r['digests_identical']}")
    return out


def targets(cl: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """auto's bytes <= 50% of off's; at a capped link its wall <= 60% of off's; uncapped, <= 110%."""
    out: dict[str, dict[str, Any]] = {}
    for r in cl["runs"]:
        key = "capped" if r["link_bytes_per_s"] else "uncapped"
        if key == "uncapped":
            out["clone_auto_bytes_x_off"] = {
                "value": r["auto_bytes_x_off"],
                "target": 0.5,
                "met": r["auto_bytes_x_off"] <= 0.5,
            }
            out["clone_auto_wall_x_off_uncapped"] = {
                "value": r["auto_wall_x_off"],
                "target": 1.1,
                "met": r["auto_wall_x_off"] <= 1.1,
            }
        else:
            out["clone_auto_wall_x_off_capped"] = {
                "value": r["auto_wall_x_off"],
                "target": 0.6,
                "met": r["auto_wall_x_off"] <= 0.6,
                "link_bytes_per_s": r["link_bytes_per_s"],
            }
        out[f"clone_digests_identical_{key}"] = {"value": r["digests_identical"], "met": r["digests_identical"]}
    return out


if __name__ == "__main__":  # pragma: no cover - use python -m bench clones
    print(json.dumps(run(Path("bench/work/clones"), repos=10, seed=7, latency=0.1, links=[0.0]), indent=1))
