"""Stage ``aggregate``: merge the shards' stats into ``data/stats.parquet``, the consumers' dataset
(``data/dataset``), DVC metrics and a report.

python -m stages.aggregate
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from xgov_digests.core.errors import XgovError
from xgov_digests.core.files import (
    DIGEST_INDEX,
    FAILURES_PLOT,
    MERGED_STATS,
    METRICS,
    REPORT,
    SECONDS_PLOT,
    SHARDS_TABLE,
    SIZES_PLOT,
    write_atomic,
)
from xgov_digests.core.logs import HUMAN, setup_logging
from xgov_digests.core.params import load_params
from xgov_digests.results.dataset import write_dataset
from xgov_digests.results.merge import combine
from xgov_digests.results.outputs import check_digests
from xgov_digests.results.report import (
    digest_index,
    failure_reasons,
    markdown,
    metrics,
    seconds_distribution,
    shard_table,
    size_distribution,
)
from xgov_digests.schemas.stats import stats_path, wall_seconds

log = logging.getLogger("stages.aggregate")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stages.aggregate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    setup_logging(stage="aggregate")
    try:
        return run(args.params)
    except XgovError as exc:  # every error the user can act on: one line, the error's exit code
        log.error(str(exc), extra={HUMAN: ""})  # the line below is the one for people
        print(f"aggregate: error: {exc}", file=sys.stderr)
        return exc.exit_code


def run(params_file: Path) -> int:
    """Merge, check and write; raises :class:`XgovError` for what the user must fix."""
    params = load_params(params_file)
    offsets = list(params.shards.offsets)
    frame = combine(params.shards.batch_size, offsets)
    check_digests(frame, offsets)
    dataset = write_dataset(frame)
    m = metrics(frame, params.shards.batch_size)
    shards = shard_table(frame, offsets, {k: wall_seconds(stats_path(k)) for k in offsets})
    write_atomic(MERGED_STATS, frame.to_parquet(index=False))
    write_atomic(DIGEST_INDEX, (json.dumps(digest_index(frame), indent=1, sort_keys=True) + "\n").encode())
    write_atomic(METRICS, (json.dumps(m, indent=2) + "\n").encode())
    write_atomic(SHARDS_TABLE, shards.to_csv(index=False).encode())
    write_atomic(SECONDS_PLOT, seconds_distribution(frame).to_csv(index=False).encode())
    write_atomic(SIZES_PLOT, size_distribution(frame, params.ingest.max_summary_bytes).to_csv(index=False).encode())
    write_atomic(FAILURES_PLOT, failure_reasons(frame).to_csv(index=False).encode())
    write_atomic(REPORT, markdown(m, shards, frame).encode())
    log.info(
        "aggregated",
        extra={
            **{k: m[k] for k in ("repos", "ok", "cached", "failed", "empty", "tokens")},
            "dataset_files": dataset["files"],
            "dataset_written": dataset["written"],
            "dataset_bytes": dataset["bytes"],
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
