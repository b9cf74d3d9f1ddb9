"""Shard selection: which repos of the snapshot belong to shard ``offset`` of ``batch_size``.

One function serves the ``fetch`` stage (writing manifests) and the standalone shard CLI (``--feed``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from xgov_digests.core.errors import XgovError
from xgov_digests.core.params import ShardParams
from xgov_digests.core.repo import Repo


class SelectionError(XgovError, ValueError):
    """Batch size, offset or offsets list are inconsistent."""


def check_offset(batch_size: int, offset: int) -> None:
    if batch_size < 1:
        raise SelectionError(f"--batch-size must be >= 1, got {batch_size}")
    if not 0 <= offset < batch_size:
        raise SelectionError(
            f"--offset must be between 0 and {batch_size - 1} for --batch-size {batch_size}, got {offset}"
        )


def check_offsets(offsets: Sequence[int], batch_size: int) -> None:
    """DVC's ``foreach`` needs the explicit list; it must be exactly 0..batch_size-1."""
    expected = list(range(batch_size))
    if list(offsets) != expected:
        raise SelectionError(
            f"params.yaml: shards.offsets is {list(offsets)} but shards.batch_size is {batch_size}; "
            f"run 'make shards N={batch_size}' (xgov-digests shards {batch_size}), "
            "which sets both together, "
            f"or set shards.offsets to {expected} (DVC's foreach needs the list, one item per shard)"
        )


def hash_bucket(key: str, batch_size: int) -> int:
    """A stable bucket for a normalised URL: independent of the rest of the feed."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % batch_size


def select(repos: Sequence[Repo], batch_size: int, offset: int, assign: str = ShardParams.assign) -> list[Repo]:
    """The repos of shard ``offset``: ``hash(url) % batch_size == offset`` (a repo keeps its shard whatever else the
    feed gains or loses), or, with ``assign='index'``, ``index % batch_size == offset`` over the sorted snapshot."""
    check_offset(batch_size, offset)
    if assign == "index":
        return [r for i, r in enumerate(repos) if i % batch_size == offset]
    if assign == "hash":
        return [r for r in repos if hash_bucket(r.key, batch_size) == offset]
    raise SelectionError(f"shards.assign must be 'index' or 'hash', got {assign!r}")
