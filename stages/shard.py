"""Stage ``shard``: clone and digest the repos of shard ``offset`` of ``batch_size`` (``shards.assign``)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from xgov_digests.core.errors import XgovError
from xgov_digests.core.files import remove_temps, summaries_path
from xgov_digests.core.logs import HUMAN, redact, setup_logging
from xgov_digests.core.params import load_params
from xgov_digests.feed.manifest import manifest_path, read_manifest
from xgov_digests.feed.selection import SelectionError, check_offset, select

log = logging.getLogger("stages.shard")

EXAMPLES = """\
examples:
  python -m stages.shard --batch-size 10 --offset 3
      digest shard 3 of 10 from data/manifests/shard-3.json (what `dvc repro shard@3` runs)
  python -m stages.shard --batch-size 10 --offset 3 --dry-run
      list the repos shard 3 would process; clone nothing (reads the manifest: in a fresh clone, run
      `dvc repro fetch` or `dvc pull` first)
  python -m stages.shard --batch-size 10 --offset 0 --feed repos.json --workers 4
      standalone, without DVC: read the feed (URL or path), select, digest

outputs: data/summaries/shard-<offset>/<owner>/<name>.txt and data/stats/shard-<offset>.parquet
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stages.shard",
        description=(
            "Clone and digest one shard of the repository feed: the repos where\n"
            "  index % batch_size == offset                    (shards.assign: index, over the sorted snapshot)\n"
            "  sha256(normalised URL) % batch_size == offset   (shards.assign: hash)"
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--batch-size", type=int, required=True, help="number of shards (shards.batch_size)")
    parser.add_argument("--offset", type=int, required=True, help="which shard, 0 <= offset < batch size")
    parser.add_argument("--dry-run", action="store_true", help="list the assigned repos and exit; clone nothing")
    parser.add_argument("--feed", metavar="URL_OR_PATH", help="select from this feed instead of the manifest")
    parser.add_argument("--workers", type=int, help="repos in flight at once (default: ingest.workers)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _pin_hash_seed() -> None:
    """gitingest keeps ignore patterns in a set, and a ``.gitignore`` negation that conflicts with a built-in pattern
    resolves by the set's order, which depends on str hashing: run with a fixed seed so a digest depends only on
    the commit and the params. dvc.yaml's cmd sets the seed, which saves a whole interpreter start per shard; run
    any other way without it (by hand, from a script), the command re-executes itself once with it."""
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, "-m", "stages.shard", *sys.argv[1:]])


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        _pin_hash_seed()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_offset(args.batch_size, args.offset)
    except SelectionError as exc:
        parser.error(str(exc))
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    setup_logging(batch_size=args.batch_size, offset=args.offset)
    try:
        return run(args)
    except XgovError as exc:  # every error the user can act on: one line, the error's exit code
        log.error(redact(str(exc)), extra={HUMAN: ""})  # the line below is the one for people
        print(f"shard: error: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code


def run(args: argparse.Namespace) -> int:
    """The shard of ``args``; raises :class:`XgovError` for what the user must fix (the message says what)."""
    params = load_params(args.params)
    if args.feed:  # --feed downloads: its HTTP client is imported only then (DVC's runs read the manifest)
        from xgov_digests.feed.snapshot import load_snapshot

        snap = load_snapshot(args.feed, params)
        repos = select(snap.repos, args.batch_size, args.offset, params.shards.assign)
    else:
        repos = read_manifest(manifest_path(args.offset), args.batch_size, args.offset)

    if args.dry_run:
        for repo in repos:
            print(f"{repo.owner}/{repo.name}\t{redact(repo.url)}\t{repo.pushed_at or '-'}")
        print(f"# batch {args.batch_size}, offset {args.offset}: {len(repos)} repos (dry run, nothing cloned)")
        return 0

    # Only a real run needs these; gitingest comes with the first cache miss (ShardRun), pandas never.
    from xgov_digests.core.diskfull import DiskFull, enospc, failed_path
    from xgov_digests.core.s3 import S3ConfigError
    from xgov_digests.digest.version import check_environment
    from xgov_digests.schemas.stats import load_writer, stats_path, write_stats
    from xgov_digests.shard.cache import open_cache
    from xgov_digests.shard.progress import ShardProgress, summary
    from xgov_digests.shard.run import ShardRun

    threading.Thread(target=load_writer, name="load-stats-writer", daemon=True).start()
    check_environment()  # the versions in the shard's DVC key must be the ones the digests are made with
    settings = params.ingest
    if args.workers is not None:
        settings = dataclasses.replace(settings, workers=args.workers)
    try:
        cache = open_cache(settings, params.storage)
    except S3ConfigError as exc:  # said with the setting it is about
        raise S3ConfigError(f"ingest.cache {settings.cache}: {exc}") from None
    # SIGTERM (a cancelled CI job, a killed container) stops the shard the way Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    out_dir = summaries_path(args.offset)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_temps(out_dir)  # a killed earlier run's unfinished atomic writes
    progress = ShardProgress(args.batch_size, args.offset, len(repos))
    started = time.monotonic()

    try:
        with progress.active():
            rows = ShardRun(repos, args.batch_size, args.offset, out_dir, settings, progress, cache).run()
        wall_s = time.monotonic() - started
        write_stats(stats_path(args.offset), rows, wall_s=wall_s)
    except OSError as exc:
        if not enospc(exc):
            raise
        raise DiskFull(failed_path(exc, out_dir)) from None
    counts = Counter(r.status for r in rows)
    kinds = Counter(r.failure_kind for r in rows if r.status == "failed")
    log.info(
        f"Batch {args.batch_size}, offset {args.offset} complete: "
        f"{counts['ok']} ok, {counts['cached']} cached, {counts['failed']} failed",
        extra={
            "empty": counts["empty"],
            "repos": len(rows),
            "failure_kinds": dict(kinds),
            HUMAN: summary(rows, wall_s),
        },
    )
    internal = sum(r.failure_kind == "internal" for r in rows)
    if internal:
        log.error(
            f"{internal} repos hit an internal error (a bug: see the tracebacks above): failing the stage so DVC "
            "records nothing"
        )
        return 1
    # A repository that answered with an error is a result; only failures to get an answer can mean the network
    # is down, and only those fail the stage.
    if rows and kinds["transient"] / len(rows) > settings.max_failure_ratio:
        log.error(
            f"{kinds['transient']} of {len(rows)} repos failed without a complete answer from their server "
            f"(transient), more than ingest.max_failure_ratio {settings.max_failure_ratio}: failing the stage so "
            "DVC records nothing (is the network down?)"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
