"""Which shard stages have failed repos in ``data/stats.parquet``: ``make retry`` re-runs exactly those.

python -m stages.retry      # prints e.g. "shard@3 shard@7" (nothing when no repo failed)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

STATS = Path("data/stats.parquet")


def failed_shards(stats: Path = STATS) -> list[str]:
    frame = pd.read_parquet(stats, columns=["offset", "status"])
    return [f"shard@{k}" for k in sorted(set(frame.loc[frame["status"] == "failed", "offset"]))]


def main() -> int:
    if not STATS.exists():
        print(f"retry: error: {STATS} not found: run 'dvc repro' first", file=sys.stderr)
        return 2
    print(" ".join(failed_shards()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
