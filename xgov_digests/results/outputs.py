"""The digests on disk against the stats: every ok/cached row has its digest where DVC tracks it, nothing else."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xgov_digests.core.errors import XgovError
from xgov_digests.core.files import DVC_SPECIAL_NAMES, SUMMARIES_DIR, digest_path, files_under, summaries_path

DIGESTED = ("ok", "cached")


class DigestMismatch(XgovError, RuntimeError):
    """The digest files on disk are not exactly the ok and cached rows' digests."""


CASE_ADVICE = (
    "this disk ignores case (macOS's default, a Windows checkout) and two of the shard's repos differ only in the case "
    "of their owner or name, so they share one folder or file. 'dvc repro --force' cannot fix that: run 'dvc repro "
    "fetch' (it gives each owner one spelling and keeps one repo of each owner/name), then 'dvc repro'; or run on a "
    "case-sensitive disk"
)


def _case_clash(shard_dir: Path, expected: set[Path], missing: list[Path], extra: list[Path]) -> str | None:
    """The advice when the mismatch is a case-insensitive disk's doing: two expected paths equal but for case, or
    every missing digest is on disk under another case."""
    folded: dict[str, Path] = {}
    for path in sorted(expected):
        other = folded.setdefault(str(path).lower(), path)
        if other != path:
            return f"{shard_dir}: {other} and {path} differ only in case: {CASE_ADVICE}"
    owners: dict[str, str] = {}
    for path in sorted(expected):
        first = owners.setdefault(path.parts[0].lower(), path.parts[0])
        if first != path.parts[0]:
            return f"{shard_dir}: owner folders {first!r} and {path.parts[0]!r} differ only in case: {CASE_ADVICE}"
    on_disk = {str(p).lower() for p in extra}
    if missing and all(str(m).lower() in on_disk for m in missing):
        return f"{shard_dir}: {missing[0]} is on disk under another case: {CASE_ADVICE}"
    return None


def check_digests(frame: pd.DataFrame, offsets: list[int], directory: Path = SUMMARIES_DIR) -> int:
    """Check, shard by shard, that the digest files DVC tracks are exactly the ok + cached rows' digests.

    Returns the number of digests; raises :class:`DigestMismatch` naming the first problem and what to do.
    """
    total = 0
    for k in offsets:
        shard_dir = summaries_path(k, directory)
        rows = frame[(frame["offset"] == k) & frame["status"].isin(DIGESTED)]
        expected = {digest_path(Path(), owner, name) for owner, name in zip(rows["owner"], rows["name"], strict=True)}
        on_disk = set(files_under(shard_dir)) if shard_dir.is_dir() else set()
        hidden = sorted(p for p in on_disk if any(part.lower() in DVC_SPECIAL_NAMES for part in p.parts))
        if hidden:
            raise DigestMismatch(
                f"{shard_dir}: {len(hidden)} digest(s) lie in folders DVC ignores, e.g. {hidden[0]}: DVC would not "
                "track them; re-run 'dvc repro' (fetch drops such owners and names)"
            )
        missing, extra = sorted(expected - on_disk), sorted(on_disk - expected)
        if (missing or extra) and (clash := _case_clash(shard_dir, expected, missing, extra)):
            raise DigestMismatch(clash)
        if missing:
            raise DigestMismatch(
                f"{shard_dir}: {len(missing)} ok/cached repo(s) have no digest file, e.g. {missing[0]}; "
                f"re-run 'dvc repro --force shard@{k}'"
            )
        if extra:
            raise DigestMismatch(
                f"{shard_dir}: {len(extra)} file(s) are no ok/cached repo's digest, e.g. {extra[0]}; "
                f"re-run 'dvc repro --force shard@{k}'"
            )
        total += len(expected)
    return total
