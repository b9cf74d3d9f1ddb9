"""Publish the workspace's digests to R2 under readable keys, for search consumers.

    python -m stages.publish [--dry-run] [--prune] [--jobs N]

``dvc push`` stores outputs by content hash. This copies each current digest to
``s3://<publish.bucket>/<publish.prefix>/<owner>/<name>.txt`` on the endpoint of the DVC remote 'r2' (credentials
from R2_ACCESS_KEY_ID/R2_SECRET_ACCESS_KEY or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), with metadata ``url``,
``pushed-at``, ``commit`` and ``sha256``, and keeps ``<prefix>/_index.json`` (key -> sha256, commit, pushedAt, url,
bytes) as the list of what is published.

It is incremental: the index is read first and only new or changed digests are uploaded. The index is written
after every upload has finished, so it never names an object that is not there yet; --prune deletes objects of
repos no longer in the snapshot only after the index that drops them is written. A repo whose clone failed
(status failed) or that is empty keeps its previous object and index entry.

exit status: 0 done; 1 the bucket could not be reached, or an upload, the index write or a delete failed after
retries (named on stderr); 2 configuration error (credentials, params, bucket, missing data/stats.parquet or digests).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from xgov_digests.logs import setup_logging
from xgov_digests.publish import (
    DEFAULT_JOBS,
    REMOTE,
    PublishError,
    RemoteError,
    _name_failures,
    filesystem,
    load_target,
    read_snapshot,
    run,
)
from xgov_digests.s3 import S3ConfigError

log = logging.getLogger("xgov_digests.publish")

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stages.publish", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dry-run", action="store_true", help="print what would change; write and delete nothing")
    parser.add_argument("--prune", action="store_true", help="delete objects of repos no longer in the snapshot")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help=f"uploads in flight (default {DEFAULT_JOBS})")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
    parser.add_argument("--remote", default=REMOTE, help=f"DVC remote giving endpoint and credentials ({REMOTE})")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    setup_logging(stage="publish")
    start = time.perf_counter()
    try:
        target = load_target(args.params, args.remote)
        fs = filesystem(args.jobs, args.remote)
        snapshot = read_snapshot(target)
        from fsspec.asyn import sync

        plan, outcome = sync(fs.loop, run, fs, target, snapshot, prune=args.prune, dry_run=args.dry_run, jobs=args.jobs)
    except (S3ConfigError, PublishError) as exc:
        log.error(str(exc))
        print(f"publish: error: {exc}", file=sys.stderr)
        return 2
    except RemoteError as exc:
        log.error(str(exc))
        print(f"publish: error: {exc}; nothing was published", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start
    counts = {
        "uploaded": outcome.uploaded,
        "new": plan.new,
        "unchanged": plan.unchanged,
        "kept": plan.kept,
        "pruned": outcome.pruned,
        "failed": len(outcome.failed),
        "bytes": outcome.bytes,
        "seconds": round(seconds, 2),
    }
    if args.dry_run:
        print(
            f"publish (dry run): would upload {len(plan.upload)} ({plan.new} new), unchanged {plan.unchanged}, "
            f"kept {plan.kept}, would prune {outcome.pruned}, bytes {outcome.bytes}, seconds {seconds:.2f} "
            f"({target}); nothing was written"
        )
        log.info("dry run", extra={**counts, "uploaded": 0, "would_upload": len(plan.upload), "target": str(target)})
        return 0
    print(
        f"publish: uploaded {outcome.uploaded}, unchanged {plan.unchanged}, kept {plan.kept}, "
        f"pruned {outcome.pruned}, failed {len(outcome.failed)}, bytes {outcome.bytes}, seconds {seconds:.2f}, "
        f"index {'written' if outcome.index_written else 'unchanged'} ({target})"
    )
    log.info("published", extra={**counts, "index_written": outcome.index_written, "target": str(target)})
    if outcome.failed:
        print(f"publish: error: {len(outcome.failed)} request(s) failed after retries:", file=sys.stderr)
        for line in _name_failures(outcome.failed):
            print(line, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
