"""A checkout's digest: our header, then gitingest's tree and file contents, cut at ``ingest.max_summary_bytes``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from xgov_digests.digest.format import Header, assemble, render_header
from xgov_digests.digest.walk import Limits, Scan

GITINGEST_LIMITS = Limits()  # gitingest's own MAX_FILES and MAX_TOTAL_SIZE_BYTES


@dataclass(frozen=True)
class Digest:
    data: bytes
    files: int
    truncated: bool
    walk_limit: str | None = None  # max_files | max_total_bytes | depth: the limit that left files out
    warnings: tuple[str, ...] = ()  # what the digest worked around (an ignore file not read as gitingest would)


def ingest_tree(checkout: Path, *, max_file_size: int, limits: Limits = GITINGEST_LIMITS) -> tuple[str, str, int]:
    """gitingest's ``(tree, content, files analysed)`` for a local folder, without token counting."""
    scan = Scan(checkout, max_file_size, limits)
    return scan.tree_text(), "".join(scan.content_pieces()), scan.tree.file_count


def make_digest(
    checkout: Path, header: Header, *, max_file_size: int, max_summary_bytes: int, limits: Limits = GITINGEST_LIMITS
) -> Digest:
    """The digest of ``checkout``: header, tree and contents, capped at ``max_summary_bytes``.

    Identical to ``truncate((header + "\\n" + tree + "\\n" + content).encode(), cap)`` with the checkout's path
    removed (gitingest's error text for an unreadable notebook names it), but files after the cap are never read."""
    scan = Scan(checkout, max_file_size, limits)
    files = scan.tree.file_count
    pieces = [render_header(header, files), "\n", scan.tree_text(), "\n"]
    data, truncated = assemble(_chain(pieces, scan), f"{scan.root}/", max_summary_bytes)
    return Digest(data, files, truncated, scan.walk_limit, tuple(scan.warnings))


def _chain(first: list[str], scan: Scan) -> Iterator[str]:
    yield from first
    yield from scan.content_pieces()
