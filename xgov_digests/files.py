"""Where the pipeline's files live (one place for every path) and atomic writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

SNAPSHOT = Path("data/repos.json")  # the feed snapshot written by fetch
MANIFEST_DIR = Path("data/manifests")  # one manifest per shard, written by fetch
SUMMARIES_DIR = Path("data/summaries")  # shard-<K>/<owner>/<name>.txt, written by the shards
STATS_DIR = Path("data/stats")  # shard-<K>.parquet, written by the shards
MERGED_STATS = Path("data/stats.parquet")  # every shard's rows, written by aggregate
DIGEST_INDEX = Path("data/index.json")  # owner/name -> digest path, written by aggregate
METRICS = Path("reports/metrics.json")  # flat totals (DVC metrics)
REPORT = Path("reports/report.md")
PLOTS_DIR = Path("reports/plots")  # the DVC plots' data, written by aggregate
SHARDS_TABLE = PLOTS_DIR / "shards.csv"  # one row per shard
SECONDS_PLOT = PLOTS_DIR / "seconds.csv"  # clone and digest seconds by percentile
SIZES_PLOT = PLOTS_DIR / "sizes.csv"  # digest sizes by percentile, and the cap
FAILURES_PLOT = PLOTS_DIR / "failures.csv"  # failed repos by reason


def project_root() -> Path:
    """The DVC project's root folder: ``DVC_ROOT``, which DVC sets for every stage command (for an experiment run in a
    temporary copy, ``dvc exp run --temp`` or ``dvc queue``, it names the workspace the experiment started from); the
    working directory when a command runs outside DVC."""
    return Path(os.environ.get("DVC_ROOT") or ".")


def resolve_location(location: str) -> str:
    """A relative local path (such as ``ingest.cache: .cache/digests``) made relative to :func:`project_root`, so that
    every run of the project, temporary experiments included, shares it; URLs and absolute paths as given."""
    if not location or "://" in location or Path(location).is_absolute():
        return location
    return str(project_root() / location)


def summaries_path(offset: int, directory: Path = SUMMARIES_DIR) -> Path:
    """Shard ``offset``'s output folder of digests."""
    return directory / f"shard-{offset}"


def digest_path(shard_dir: Path, owner: str, name: str) -> Path:
    """One repo's digest inside its shard's folder: ``<owner>/<name>.txt``."""
    return shard_dir / owner / f"{name}.txt"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file and a rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
