"""``xgov-digests publish``: copy the workspace's digests to R2 under readable keys, for search consumers.

    xgov-digests publish [--dry-run] [--prune | --prune-if-safe] [--force] [--jobs N]

``dvc push`` stores outputs by content hash. This copies each current digest to
``s3://<publish.bucket>/<publish.prefix>/<owner>/<name>.txt`` on the endpoint of the DVC remote 'r2' (credentials
as DVC resolves them for that remote), with metadata ``url``, ``pushed-at``, ``commit`` and ``sha256``, and keeps
``<prefix>/_index.json`` (key -> sha256, commit, pushedAt, url, bytes, etag) as the list of what is published.

Each publish reads the index and lists the prefix (one paginated LIST), then uploads what is new, changed, or
missing or different in the bucket. Writes happen under a lease object (<prefix>/_publish.lease), so publishers
take turns; the index is written last and conditionally (If-Match), so it never names a missing object. A repo
whose clone failed (status failed) or that is empty keeps its previous object and index entry.

Publish runs only from a finished run: it refuses (exit 2, nothing written) when the shards or aggregate are not
up to date with dvc.lock (a run that stopped half-way: its new digests would go out with the old stats' commit);
--force publishes the workspace as it is. Each object's commit and pushed-at metadata are read from the digest's own
header, so they always describe the bytes uploaded.

--prune deletes objects of repos no longer in the snapshot, after the index that drops them is written, and only
from a complete, current workspace: it refuses (exit 2, nothing written) when feed.limit > 0, when the shards or
aggregate are not up to date with dvc.lock, when the stats hold no rows, or when it would delete more than
publish.max_prune_ratio of the published objects; --force prunes anyway; --prune-if-safe publishes without pruning
when the guard says no. Every request is bounded by storage.timeout (params.yaml).

exit status: 0 done; 1 the bucket could not be reached, another publish held the lease, or an upload, the index
write or a delete failed (named on stderr); 2 configuration error (credentials, params, bucket, missing
data/stats.parquet or digests), an unfinished run or a refused prune.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path

from xgov_digests.commands.repro import positive
from xgov_digests.core.logs import HUMAN, setup_logging
from xgov_digests.core.s3 import S3ConfigError, open_remote
from xgov_digests.publish.bucket import Bucket, LeaseError, RemoteError
from xgov_digests.publish.plan import REMOTE, PublishError, load_settings, load_target, read_workspace
from xgov_digests.publish.run import DEFAULT_JOBS, DEFAULT_WAIT, Options, PruneRefused, name_failures, run

log = logging.getLogger("xgov_digests.publish")


class Stopped(BaseException):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C, so the publish lease is released and queued uploads never start."""


def _stop(signum: int, frame: object) -> None:
    raise Stopped(signum)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="print what would change; write and delete nothing")
    prune = parser.add_mutually_exclusive_group()
    prune.add_argument("--prune", action="store_true", help="delete objects of repos no longer in the snapshot")
    prune.add_argument("--prune-if-safe", action="store_true", help="prune only when the prune guard allows it")
    parser.add_argument("--force", action="store_true", help="publish an unfinished run; prune despite the guard")
    parser.add_argument(
        "--jobs", type=positive, default=DEFAULT_JOBS, help=f"uploads in flight (default {DEFAULT_JOBS})"
    )
    parser.add_argument("--wait", type=float, default=DEFAULT_WAIT, help="seconds to wait for another publish")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
    parser.add_argument("--remote", default=REMOTE, help=f"DVC remote giving endpoint and credentials ({REMOTE})")


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "publish",
        help="copy the digests to R2 for search consumers (--dry-run, --prune)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=main)


def defaults() -> argparse.Namespace:
    """The options of a plain ``publish`` (what ``run`` publishes with)."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args([])


def main(args: argparse.Namespace) -> int:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop)
    try:
        return publish(args)
    except (Stopped, KeyboardInterrupt) as exc:
        signum = exc.args[0] if isinstance(exc, Stopped) else signal.SIGINT
        print(
            f"publish: stopped by {signal.Signals(signum).name}: its publish lease (if any) was released; "
            "run publish again to finish",
            file=sys.stderr,
        )
        return 128 + signum


def publish(args: argparse.Namespace) -> int:
    setup_logging(stage="publish")
    start = time.perf_counter()
    opts = Options(
        prune="yes" if args.prune else "if-safe" if args.prune_if_safe else "no",
        force=args.force,
        dry_run=args.dry_run,
        jobs=args.jobs,
        wait=args.wait,
    )
    secret = None
    try:
        settings = load_settings(args.params)
        target = load_target(settings, args.params, args.remote)
        remote = open_remote(args.remote)
        secret = remote.credentials.secret
        log.info("credentials", extra={"source": remote.credentials.source, "remote": args.remote, HUMAN: ""})
        bucket = Bucket(remote.client(settings.storage.timeout, args.jobs), target, remote.endpoint, secret)
        workspace = read_workspace(target)
        plan, outcome = run(bucket, workspace, settings, opts)
    except PruneRefused as exc:
        print(f"publish: error: prune refused{' (dry run)' if args.dry_run else ''}:", file=sys.stderr)
        for reason in exc.reasons:
            print(f"  - {reason}", file=sys.stderr)
        print(
            "publish: nothing was written. Fix the above, or pass --force to prune anyway, or --prune-if-safe to "
            "publish without pruning.",
            file=sys.stderr,
        )
        log.error("prune refused", extra={"reasons": exc.reasons, HUMAN: ""})
        return 2
    except (S3ConfigError, PublishError) as exc:
        log.error(str(exc), extra={HUMAN: ""})  # the printed line is the one for people
        print(f"publish: error: {exc}", file=sys.stderr)
        return 2
    except (RemoteError, LeaseError) as exc:
        log.error(str(exc), extra={HUMAN: ""})
        print(f"publish: error: {exc}; nothing more was written", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start
    counts = {
        "uploaded": outcome.uploaded,
        "restored": outcome.restored,
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
            f"publish (dry run): would upload {len(plan.upload)} ({plan.new} new, {plan.restored} restored), "
            f"unchanged {plan.unchanged}, kept {plan.kept}, would prune {outcome.pruned}, bytes {outcome.bytes}, "
            f"seconds {seconds:.2f} ({target}); nothing was written"
        )
        log.info(
            "dry run",
            extra={**counts, "uploaded": 0, "would_upload": len(plan.upload), "target": str(target), HUMAN: ""},
        )
        return 0
    print(
        f"publish: uploaded {outcome.uploaded}, restored {outcome.restored}, unchanged {plan.unchanged}, "
        f"kept {plan.kept}, pruned {outcome.pruned}, failed {len(outcome.failed)}, bytes {outcome.bytes}, "
        f"seconds {seconds:.2f}, index {outcome.index} ({target})"
    )
    log.info("published", extra={**counts, "index": outcome.index, "target": str(target), HUMAN: ""})
    if outcome.failed:
        print(f"publish: error: {len(outcome.failed)} request(s) failed:", file=sys.stderr)
        for line in name_failures(outcome.failed):
            print(line, file=sys.stderr)
        return 1
    return 0
