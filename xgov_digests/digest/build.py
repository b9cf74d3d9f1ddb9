"""A checkout's digest: our header, then gitingest's tree and file contents, cut at ``ingest.max_summary_bytes``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from xgov_digests.digest.format import Header, assemble, render_header
from xgov_digests.digest.rules import Limits

if TYPE_CHECKING:
    from xgov_digests.digest.walk import Scan

GITINGEST_LIMITS = Limits()  # gitingest's own MAX_FILES and MAX_TOTAL_SIZE_BYTES


@dataclass(frozen=True)
class Digest:
    data: bytes
    files: int
    truncated: bool
    walk_limit: str | None = None  # max_files | max_total_bytes | depth: the limit that left files out
    warnings: tuple[str, ...] = ()  # what the digest worked around (an ignore file not read as gitingest would)
    # Not a digest yet: it reached a file still absent from the checkout. ``needs``: the absent files from that one
    # on, in the digest's order; ``reached``: the characters of digest text before it. ``data`` is empty.
    needs: tuple[str, ...] = ()
    reached: int = 0


def ingest_tree(checkout: Path, *, max_file_size: int, limits: Limits = GITINGEST_LIMITS) -> tuple[str, str, int]:
    """gitingest's ``(tree, content, files analysed)`` for a local folder, without token counting."""
    from xgov_digests.digest.walk import Scan

    scan = Scan(checkout, max_file_size, limits)
    return scan.tree_text(), "".join(scan.content_pieces()), scan.tree.file_count


def make_digest(
    checkout: Path,
    header: Header,
    *,
    max_file_size: int,
    max_summary_bytes: int,
    limits: Limits = GITINGEST_LIMITS,
    absent: frozenset[str] = frozenset(),
) -> Digest:
    """The digest of ``checkout``: header, tree and contents, capped at ``max_summary_bytes``.

    Identical to ``truncate((header + "\\n" + tree + "\\n" + content).encode(), cap)`` with the checkout's path
    removed (gitingest's error text for an unreadable notebook names it), but files after the cap are never read.
    The files of ``absent`` are on disk with their size only: a digest that would read one of them is returned
    unfinished, with :attr:`Digest.needs` saying which files it needs (see xgov_digests/clone/strategy.py)."""
    # the walk (and gitingest under it) is imported here, where a digest is made: the shard, which only receives
    # Digest objects from its digest children, never imports gitingest (xgov_digests/digest/rules.py)
    from xgov_digests.digest.walk import Absent, Scan

    scan = Scan(checkout, max_file_size, limits, absent)
    files = scan.tree.file_count
    pieces = [render_header(header, files), "\n", scan.tree_text(), "\n"]
    counted = _Counted(_chain(pieces, scan))
    try:
        data, truncated = assemble(counted, f"{scan.root}/", max_summary_bytes)
    except Absent as stop:
        order = [leaf.rel for leaf in scan.leaves() if leaf.rel in absent]
        needs = tuple(order[order.index(stop.rel) :])
        return Digest(b"", files, False, scan.walk_limit, tuple(scan.warnings), needs, counted.chars)
    return Digest(data, files, truncated, scan.walk_limit, tuple(scan.warnings))


class _Counted:
    """The pieces, counting their characters as they are taken."""

    def __init__(self, pieces: Iterator[str]) -> None:
        self.pieces = pieces
        self.chars = 0

    def __iter__(self) -> Iterator[str]:
        for piece in self.pieces:
            self.chars += len(piece)
            yield piece


def _chain(first: list[str], scan: Scan) -> Iterator[str]:
    yield from first
    yield from scan.content_pieces()
