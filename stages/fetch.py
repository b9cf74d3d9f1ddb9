"""Stage ``fetch``: snapshot the feed into ``data/repos.json`` and write one manifest per shard.

python -m stages.fetch
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from xgov_digests.feed import FeedError, load_snapshot, render_snapshot
from xgov_digests.files import MANIFEST_DIR, SNAPSHOT, write_atomic
from xgov_digests.logs import HUMAN, redact, setup_logging
from xgov_digests.manifest import manifest_path, write_manifest
from xgov_digests.params import ParamsError, load_params
from xgov_digests.selection import SelectionError, check_offsets, select
from xgov_digests.stale import remove_stale_shards

log = logging.getLogger("stages.fetch")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stages.fetch", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    setup_logging(stage="fetch")
    try:
        params = load_params(args.params)
        check_offsets(params.shards.offsets, params.shards.batch_size)
        snap = load_snapshot(
            params.feed.url, limit=params.feed.limit, timeout=params.feed.timeout, retries=params.feed.retries
        )
    except (ParamsError, SelectionError, FeedError) as exc:
        log.error(str(exc), extra={HUMAN: ""})  # the line below is the one for people
        print(f"fetch: error: {exc}", file=sys.stderr)
        return 2
    write_atomic(SNAPSHOT, render_snapshot(snap.records))
    # The manifests folder is this stage's output: rewrite it whole, so no stale shard file lingers.
    shutil.rmtree(MANIFEST_DIR, ignore_errors=True)
    sizes = []
    for offset in params.shards.offsets:
        repos = select(snap.repos, params.shards.batch_size, offset, params.shards.assign)
        write_manifest(manifest_path(offset), params.shards.batch_size, offset, params.shards.assign, repos)
        sizes.append(len(repos))
    if removed := remove_stale_shards(params.shards.offsets):
        log.info("removed shards no longer in shards.offsets (outputs, .gitignore and dvc.lock entries)",
                 extra={"offsets": removed})  # fmt: skip
    log.info(
        "snapshot written",
        extra={"repos": len(snap.repos), "dropped": snap.dropped, "duplicates": snap.duplicates,
               "shard_sizes": sizes, "feed": redact(params.feed.url)},
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
