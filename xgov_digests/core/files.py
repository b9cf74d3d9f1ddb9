"""Where the pipeline's files live (one place for every path) and atomic writes."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
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


# Names DVC or git treat specially inside an output folder: DVC skips ``.git``, ``.hg`` and ``.dvc`` folders (and
# takes a folder holding ``.dvc`` for a sub-repository it skips whole), and reads ``.dvcignore`` as an ignore file
# (a folder of that name stops ``dvc repro`` and ``dvc status``). Compared ignoring case: some disks do.
DVC_SPECIAL_NAMES = frozenset({".git", ".hg", ".dvc", ".dvcignore"})
# Temp files of write_atomic: ``~`` is in no owner or name the feed lets through, so the shard's cleanup of a killed
# run's temp files can never touch a digest or an owner's folder.
TEMP_MARK = "~xgov-tmp-"


def summaries_path(offset: int, directory: Path = SUMMARIES_DIR) -> Path:
    """Shard ``offset``'s output folder of digests."""
    return directory / f"shard-{offset}"


def digest_path(shard_dir: Path, owner: str, name: str) -> Path:
    """One repo's digest inside its shard's folder: ``<owner>/<name>.txt``."""
    return shard_dir / owner / f"{name}.txt"


def is_temp(path: Path) -> bool:
    """A temp file that :func:`write_atomic` made (and a killed run may have left behind)."""
    return TEMP_MARK in path.name and path.name.endswith(".tmp")


def remove_temps(directory: Path) -> int:
    """Remove the temp files a killed run's :func:`write_atomic` left under ``directory``; nothing else."""
    removed = 0
    for root, _, names in os.walk(directory):
        for name in names:
            path = Path(root, name)
            if is_temp(path) and not path.is_symlink() and path.is_file():
                path.unlink()
                removed += 1
    return removed


def files_under(directory: Path) -> Iterator[Path]:
    """Every file under ``directory`` (hidden ones too), relative to it, in sorted order."""
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        for name in sorted(names):
            yield Path(root, name).relative_to(directory)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file and a rename: readers never see half a file.

    The file gets the permissions the umask gives a new file (0644 under the usual 022), as ``open()`` would.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.parent / f"{TEMP_MARK}{secrets.token_hex(8)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
