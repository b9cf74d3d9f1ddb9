"""Profile of one shard's own interpreter on the real corpus: where its CPU goes beside git and the digest child.

python -m bench.shard_profile [--copies 1] [--latency 0.1] [--top 25] [--name shard-profile]

The real corpus (bench/real_corpus.py) is served by the bench's git server (``latency`` a request); the repos are
processed one after the other by ``ShardRun._process`` in this process's main thread under cProfile (so that
cProfile sees them: it profiles one thread), with the default params and a digest pool of one worker. Reported:
this interpreter's CPU a repo (``getrusage(RUSAGE_SELF)``: every thread of the shard, not git, not the digest
child), its children's (git; the digest child is the fork server's, not counted), wall a repo, bytes the server
sent, and the functions with the most CPU of their own. ``--no-object-info`` makes the server refuse ``object-info``
as GitHub does.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import real_corpus
from bench.floor import NoObjectInfo
from bench.measure import ROOT
from tests.fixtures.gitserver import GitServer


def _cpu() -> tuple[float, float]:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def profile(
    *, copies: int, latency: float, top: int, object_info: bool, mirrors: Path | None, repos_max: int = 0
) -> dict[str, Any]:
    from xgov_digests.core.params import IngestParams
    from xgov_digests.core.repo import Repo
    from xgov_digests.shard.run import ShardRun

    work = ROOT / "bench" / "work" / "shard-profile"
    feed, entries, _ = real_corpus.build(ROOT / "bench" / "work" / "floor" / "real-corpus", mirrors, copies)
    repos = [Repo(e["url"], e["owner"], e["name"], e["pushedAt"]) for e in entries][: repos_max + 1 or None]
    server_cls = GitServer if object_info else NoObjectInfo
    out_dir = work / "out"
    shutil.rmtree(work, ignore_errors=True)
    out_dir.mkdir(parents=True)
    with server_cls(feed.parent / "repos", latency=latency, lifetime=3600) as server:
        os.environ.update(server.git_env())
        os.environ.setdefault("TMPDIR", "/dev/shm" if Path("/dev/shm").is_dir() else tempfile.gettempdir())
        tempfile.tempdir = None
        run = ShardRun(repos, 1, 0, out_dir, IngestParams(workers=1, allowed_hosts=("github.com",)))
        with ThreadPoolExecutor(1) as janitor:
            run._process(repos[0], janitor)  # imports, the digest pool's start: not per repo
            prof = cProfile.Profile()
            cpu0, kids0, wall0, sent0 = *_cpu(), time.perf_counter(), server.bytes_sent
            prof.enable()
            rows = [run._process(repo, janitor) for repo in repos[1:]]
            prof.disable()
            cpu1, kids1, wall1, sent1 = *_cpu(), time.perf_counter(), server.bytes_sent
        run._close_pool()
    n = len(rows)
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(top)
    shutil.rmtree(work, ignore_errors=True)
    return {
        "repos": n,
        "object_info": object_info,
        "latency_s": latency,
        "shard_cpu_s_per_repo": round((cpu1 - cpu0) / n, 4),
        "git_cpu_s_per_repo": round((kids1 - kids0) / n, 4),
        "wall_s_per_repo": round((wall1 - wall0) / n, 3),
        "bytes_sent_per_repo": (sent1 - sent0) // n,
        "statuses": sorted({r.status for r in rows}),
        "profile": text.getvalue(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.shard_profile", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--copies", type=int, default=1, help="owners each real repository is served under (1)")
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--repos", type=int, default=0, help="profile at most this many repos (0: all)")
    parser.add_argument("--mirrors", type=Path)
    parser.add_argument("--no-object-info", action="store_true", help="the server refuses object-info (GitHub)")
    parser.add_argument("--name", default="shard-profile")
    args = parser.parse_args(argv)
    result = profile(
        copies=args.copies,
        latency=args.latency,
        top=args.top,
        object_info=not args.no_object_info,
        mirrors=args.mirrors,
        repos_max=args.repos,
    )
    dest = ROOT / "bench" / "results" / f"{args.name}.json"
    dest.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(result.pop("profile"))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
