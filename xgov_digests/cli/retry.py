"""Which shard stages have failed repos in ``data/stats.parquet``: ``make retry`` re-runs exactly those.

python -m xgov_digests.cli.retry      # prints e.g. "shard@3 shard@7" (nothing when no repo failed)

make retry then runs 'dvc repro --force --single-item' on those shards and 'dvc repro --single-item aggregate';
fetch does not run, so the snapshot and the manifests stay.
"""

from __future__ import annotations

import argparse
import sys

from xgov_digests.core.files import MERGED_STATS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xgov_digests.cli.retry", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.parse_args(argv)
    if not MERGED_STATS.exists():
        print(f"retry: error: {MERGED_STATS} not found: run 'dvc repro' first", file=sys.stderr)
        return 2
    from xgov_digests.schemas.stats import failed_shards, read_stats  # pandas: only once there is something to read

    print(" ".join(failed_shards(read_stats(MERGED_STATS))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
