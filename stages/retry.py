"""Which shard stages have failed repos in ``data/stats.parquet``: ``make retry`` re-runs exactly those.

python -m stages.retry      # prints e.g. "shard@3 shard@7" (nothing when no repo failed)
"""

from __future__ import annotations

import sys

from xgov_digests.files import MERGED_STATS
from xgov_digests.stats import failed_shards, read_stats


def main() -> int:
    if not MERGED_STATS.exists():
        print(f"retry: error: {MERGED_STATS} not found: run 'dvc repro' first", file=sys.stderr)
        return 2
    print(" ".join(failed_shards(read_stats(MERGED_STATS))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
