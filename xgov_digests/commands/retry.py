"""``xgov-digests retry``: re-run exactly the shards that have failed repos in ``data/stats.parquet``
(``dvc repro --force``, fetch not run: the snapshot and manifests stay), then aggregate, and stage the results for
git as ``run`` does (``make retry``). ``--dry`` only prints those shards (e.g. "shard@3 shard@7"; nothing when no repo
failed) and runs nothing."""

from __future__ import annotations

import argparse

from xgov_digests.commands.common import stage_results
from xgov_digests.core.errors import XgovError
from xgov_digests.core.files import MERGED_STATS
from xgov_digests.operations import dvc


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "retry", help="re-run the shards that have failed repos, then stage for git", description=__doc__
    )
    parser.add_argument("--dry", action="store_true", help="only print the shards it would re-run")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if not MERGED_STATS.exists():
        raise XgovError(f"{MERGED_STATS} not found: run 'xgov-digests repro' (or dvc repro) first")
    from xgov_digests.schemas.stats import failed_shards, read_stats  # pandas: only once there is something to read

    shards = failed_shards(read_stats(MERGED_STATS))
    if args.dry:
        print(" ".join(shards))
        return 0
    if not shards:
        print(f"no failed repos in {MERGED_STATS}: nothing to retry, nothing staged")
        return 0
    print(f"retrying {' '.join(shards)}")
    dvc.must(["repro", "--force", "--single-item", *shards])
    dvc.must(["repro", "--single-item", "aggregate"])
    stage_results("retry")
    return 0
