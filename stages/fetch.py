"""Stage ``fetch``: snapshot the feed into ``data/repos.json`` and write one manifest per shard.

python -m stages.fetch
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from xgov_digests.core.errors import XgovError
from xgov_digests.core.files import MANIFEST_DIR, SNAPSHOT, write_atomic
from xgov_digests.core.logs import HUMAN, redact, setup_logging
from xgov_digests.core.params import load_params
from xgov_digests.dvcfiles.stale_shards import remove_stale_shards
from xgov_digests.feed.download import check_trackable
from xgov_digests.feed.manifest import manifest_path, write_manifest
from xgov_digests.feed.selection import check_offsets, select
from xgov_digests.feed.snapshot import load_snapshot, render_snapshot

log = logging.getLogger("stages.fetch")


def remove_other_files(directory: Path, keep: set[str]) -> None:
    """Everything in ``directory`` but the files named in ``keep``: the output is exactly this run's manifests."""
    for path in directory.iterdir():
        if path.name in keep:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


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
        check_trackable(params.feed.url)  # the URL is this stage's DVC dependency
        snap = load_snapshot(params.feed.url, params, require_validator=True)
    except XgovError as exc:  # every error the user can act on: one line, the error's exit code
        log.error(str(exc), extra={HUMAN: ""})  # the line below is the one for people
        print(f"fetch: error: {exc}", file=sys.stderr)
        return exc.exit_code
    # Both outputs are `persist: true` in dvc.yaml: DVC leaves the last good snapshot in place while this runs, so a
    # feed that fails above changes nothing. Each file is replaced by a rename; then what no shard reads goes.
    write_atomic(SNAPSHOT, render_snapshot(snap.records))
    sizes, keep = [], set()
    for offset in params.shards.offsets:
        repos = select(snap.repos, params.shards.batch_size, offset, params.shards.assign)
        path = manifest_path(offset)
        write_manifest(path, params.shards.batch_size, offset, params.shards.assign, repos)
        keep.add(path.name)
        sizes.append(len(repos))
    remove_other_files(MANIFEST_DIR, keep)
    if removed := remove_stale_shards(params.shards.offsets):
        log.info(
            "removed shards no longer in shards.offsets (outputs, .gitignore and dvc.lock entries)",
            extra={"offsets": removed},
        )
    log.info(
        "snapshot written",
        extra={
            "repos": len(snap.repos),
            "dropped": snap.dropped,
            "duplicates": snap.duplicates,
            "shard_sizes": sizes,
            "feed": redact(params.feed.url),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
