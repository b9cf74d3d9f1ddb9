"""The digests on disk against the stats: every ok/cached row has its digest where DVC tracks it, nothing else."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xgov_digests.core.files import DVC_SPECIAL_NAMES, SUMMARIES_DIR, digest_path, files_under, summaries_path

DIGESTED = ("ok", "cached")


class DigestMismatch(RuntimeError):
    """The digest files on disk are not exactly the ok and cached rows' digests."""


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
        if missing := sorted(expected - on_disk):
            raise DigestMismatch(
                f"{shard_dir}: {len(missing)} ok/cached repo(s) have no digest file, e.g. {missing[0]}; "
                f"re-run 'dvc repro --force shard@{k}'"
            )
        if extra := sorted(on_disk - expected):
            raise DigestMismatch(
                f"{shard_dir}: {len(extra)} file(s) are no ok/cached repo's digest, e.g. {extra[0]}; "
                f"re-run 'dvc repro --force shard@{k}'"
            )
        total += len(expected)
    return total
