"""Shards that left ``shards.offsets``: their outputs, ``.gitignore`` lines and ``dvc.lock`` entries are removed.

DVC's ``foreach`` forgets a removed item but leaves everything it wrote for it: ``data/summaries/shard-K``,
``data/stats/shard-K.parquet``, their lines in the ``.gitignore`` files and the ``shard@K`` entry of ``dvc.lock``
(``dvc repro`` only ever updates the entries of the stages it runs). ``fetch`` calls :func:`remove_stale_shards`,
so that after the batch size shrinks nothing that globs ``shard-*`` sees a digest twice.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from io import StringIO
from pathlib import Path

from ruamel.yaml import YAML

from xgov_digests.core.files import STATS_DIR, SUMMARIES_DIR, summaries_path, write_atomic

LOCKFILE = Path("dvc.lock")
SHARD_STAGE = "shard"  # the foreach stage's name in dvc.yaml: its items are locked as shard@<offset>
_SHARD_NAME = re.compile(r"shard-(\d+)(?:\.parquet)?")


def _offsets_on_disk() -> set[int]:
    found = set()
    for folder in (SUMMARIES_DIR, STATS_DIR):
        if folder.is_dir():
            found |= {int(m[1]) for p in folder.iterdir() if (m := _SHARD_NAME.fullmatch(p.name))}
    return found


def _drop_gitignore_lines(gitignore: Path, keep: set[int], suffix: str) -> None:
    """Remove the ``/shard-K<suffix>`` lines DVC added for shards whose K is not kept."""
    if not gitignore.exists():
        return
    pattern = re.compile(rf"/shard-(\d+){re.escape(suffix)}")
    lines = gitignore.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [ln for ln in lines if not ((m := pattern.fullmatch(ln.strip())) and int(m[1]) not in keep)]
    if kept == lines:
        return
    if any(ln.strip() for ln in kept):
        write_atomic(gitignore, "".join(kept).encode("utf-8"))
    else:
        gitignore.unlink()  # what DVC does with a .gitignore it emptied


def _lock_offset(name: str) -> int | None:
    """``shard@7`` -> 7; any other stage name -> None."""
    stage, _, item = name.partition("@")
    return int(item) if stage == SHARD_STAGE and item.isdigit() else None


def _drop_lock_entries(lockfile: Path, keep: set[int]) -> None:
    """Remove the ``shard@K`` entries of ``dvc.lock`` whose K is not in ``keep``."""
    if not lockfile.exists():
        return
    yaml = YAML()  # round trip, as DVC itself rewrites dvc.lock
    yaml.default_flow_style = False
    data = yaml.load(lockfile.read_text(encoding="utf-8"))
    stages = (data or {}).get("stages") or {}
    gone = [name for name in stages if (k := _lock_offset(name)) is not None and k not in keep]
    if gone:
        for name in gone:
            del stages[name]
        out = StringIO()
        yaml.dump(data, out)
        write_atomic(lockfile, out.getvalue().encode("utf-8"))


def _locked_offsets(lockfile: Path) -> set[int]:
    if not lockfile.exists():
        return set()
    stages = (YAML(typ="safe").load(lockfile.read_text(encoding="utf-8")) or {}).get("stages") or {}
    return {k for name in stages if (k := _lock_offset(name)) is not None}


def stale_offsets(offsets: Iterable[int], lockfile: Path = LOCKFILE) -> list[int]:
    """Offsets not in ``offsets`` that still have outputs on disk or an entry in ``dvc.lock`` (sorted)."""
    return sorted((_offsets_on_disk() | _locked_offsets(lockfile)) - set(offsets))


def remove_stale_shards(offsets: Iterable[int], lockfile: Path = LOCKFILE) -> list[int]:
    """Delete every trace of shards whose offset is not in ``offsets``; returns the offsets removed (sorted)."""
    keep = set(offsets)
    stale = stale_offsets(keep, lockfile)
    for k in stale:
        shutil.rmtree(summaries_path(k), ignore_errors=True)
        (STATS_DIR / f"shard-{k}.parquet").unlink(missing_ok=True)
    _drop_gitignore_lines(SUMMARIES_DIR / ".gitignore", keep, "")
    _drop_gitignore_lines(STATS_DIR / ".gitignore", keep, ".parquet")
    _drop_lock_entries(lockfile, keep)
    return stale
