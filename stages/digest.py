"""Digest formatting: our header, then gitingest's tree and file contents for a local checkout.

gitingest is driven through its own pieces (query, ignore patterns, tree walk, formatter) on the local
checkout, leaving out what needs the network: its cloning and its tiktoken token count. The result is
byte-identical to stock gitingest's ``tree + "\\n" + content`` for the same folder and ``max_file_size``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from gitingest.ingestion import _process_node
from gitingest.output_formatter import _create_tree_structure, _gather_file_contents
from gitingest.query_parser import parse_local_dir_path
from gitingest.schemas import FileSystemNode, FileSystemNodeType, FileSystemStats
from gitingest.utils.ignore_patterns import load_ignore_patterns
from gitingest.utils.pattern_utils import process_patterns

# Bump when anything we write changes shape: it is part of the digest cache's fingerprint.
FORMAT_VERSION = 1
GITINGEST_VERSION = metadata.version("gitingest")


@dataclass(frozen=True)
class Header:
    """What we write above gitingest's output."""

    owner: str
    name: str
    url: str
    commit: str
    pushed_at: str | None


@dataclass(frozen=True)
class Digest:
    data: bytes
    files: int
    truncated: bool


def _pin_encoding() -> None:
    # gitingest picks a file's encoding from the locale: pin it so digests do not depend on the caller's.
    os.environ["LC_ALL"] = "C.UTF-8"


def ingest_tree(checkout: Path, *, max_file_size: int) -> tuple[str, str, int]:
    """gitingest's ``(tree, content, files analysed)`` for a local folder, without token counting."""
    _pin_encoding()
    query = parse_local_dir_path(str(checkout))
    query.max_file_size = max_file_size
    query.ignore_patterns, query.include_patterns = process_patterns()
    for name in (".gitignore", ".gitingestignore"):
        query.ignore_patterns.update(load_ignore_patterns(query.local_path, filename=name))
    root = FileSystemNode(
        name=query.local_path.name,
        type=FileSystemNodeType.DIRECTORY,
        path_str=".",
        path=query.local_path,
    )
    _process_node(node=root, query=query, stats=FileSystemStats())
    tree = "Directory structure:\n" + _create_tree_structure(query, node=root)
    return tree, _gather_file_contents(root), root.file_count


def render_header(h: Header, files: int) -> str:
    return (
        f"Repository: {h.owner}/{h.name}\n"
        f"URL: {h.url}\n"
        f"Commit: {h.commit}\n"
        f"Pushed at: {h.pushed_at or 'unknown'}\n"
        f"Files analyzed: {files}\n"
    )


def truncate(data: bytes, cap: int) -> tuple[bytes, bool]:
    """Cut ``data`` to at most ``cap`` bytes on a UTF-8 boundary, ending with a one-line notice."""
    if len(data) <= cap:
        return data, False
    notice = f"\n[truncated: digest cut at {cap} bytes of {len(data)} by ingest.max_summary_bytes]\n".encode()
    keep = data[: cap - len(notice)].decode("utf-8", "ignore").encode("utf-8")
    return keep + notice, True


def make_digest(checkout: Path, header: Header, *, max_file_size: int, max_summary_bytes: int) -> Digest:
    """The digest of ``checkout``: header, tree and contents, capped at ``max_summary_bytes``."""
    tree, content, files = ingest_tree(checkout, max_file_size=max_file_size)
    text = f"{render_header(header, files)}\n{tree}\n{content}"
    data, truncated = truncate(text.encode("utf-8", "replace"), max_summary_bytes)
    return Digest(data, files, truncated)
