"""gitingest 0.3.1's walk of a local folder, in one pass: ignore files, the filtered tree, the files in output order.

The result is byte-identical to gitingest's ``_process_node`` + ``_create_tree_structure`` + ``_gather_file_contents``
for the same folder (``tests/unit/digest/test_walk.py`` compares them), except where gitingest would read outside the
checkout or fail the repository on an ignore file (:mod:`xgov_digests.digest.ignore_files`).
The traversal limits are gitingest's (``MAX_FILES``, ``MAX_TOTAL_SIZE_BYTES``, ``MAX_DIRECTORY_DEPTH``, read
where gitingest's walk reads them when a scan starts: :func:`gitingest_limits`) or ``ingest.max_files`` /
``ingest.max_total_bytes``; the first one that leaves something out is recorded in :attr:`Scan.walk_limit`.

One difference by design: gitingest walks each folder in ``os.scandir`` order, which differs between filesystems
(ext4's hash order, tmpfs's newest-first) and machines, so once a limit bites, which files it keeps depends on the
disk. Here each folder is walked in the digest's own order (``rules.walk_order``), so the files kept are the
first ones of the digest, chosen by the commit alone. Where no limit bites the result is the same set of files, in the
same output order: byte-identical to gitingest. Names equal but for case are ordered by code point (gitingest
keeps them in disk order).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from gitingest.schemas.filesystem import SEPARATOR

from xgov_digests.digest.content import file_text, preferred_encodings
from xgov_digests.digest.patterns import IgnoreSpec
from xgov_digests.digest.rules import Limits, entry_order, list_all, patterns_of

_DIR, _FILE, _SYMLINK = 0, 1, 2


def gitingest_limits() -> ModuleType:
    """The module whose ``MAX_FILES``, ``MAX_TOTAL_SIZE_BYTES`` and ``MAX_DIRECTORY_DEPTH`` gitingest's walk reads:
    ``gitingest.ingestion`` where it is imported (a test may set them there), else ``gitingest.config``, which
    ``gitingest.ingestion`` takes them from (a digest process never imports the ingestion module, which imports
    gitingest's output formatter: see ``server_preload``)."""
    return sys.modules.get("gitingest.ingestion") or importlib.import_module("gitingest.config")


class _Node:
    __slots__ = ("kind", "name", "rel", "size", "file_count", "children", "target")

    def __init__(self, kind: int, name: str, rel: str, size: int = 0) -> None:
        self.kind = kind
        self.name = name
        self.rel = rel
        self.size = size
        self.file_count = 1 if kind != _DIR else 0
        self.children: list[_Node] = []
        self.target = ""  # a symlink's Path(os.readlink(path)).name


def _sort_key(child: _Node) -> tuple[int, str]:
    # gitingest's FileSystemNode.sort_children: README first, files, dotfiles, then directories and symlinks.
    name = child.name.lower()
    if child.kind == _FILE:
        if name == "readme" or name.startswith("readme."):
            return (0, name)
        return (1 if not name.startswith(".") else 2, name)
    return (3 if not name.startswith(".") else 4, name)


class Absent(Exception):
    """The digest reached a file whose content is not on disk yet (:attr:`Scan.absent`): ``rel`` is its path."""

    def __init__(self, rel: str) -> None:
        super().__init__(rel)
        self.rel = rel


class Scan:
    """One checkout: ignore patterns, the filtered tree, the files in output order, and what was worked around.

    ``absent``: files that stand on disk with their size but not their content (a partial checkout leaves the
    files past the digest's cut on the server). The walk, which reads only names and sizes, is the same; reading
    one of them raises :class:`Absent`."""

    def __init__(
        self, checkout: Path, max_file_size: int, limits: Limits, absent: frozenset[str] = frozenset()
    ) -> None:
        self.absent = absent
        self.root_path = Path(str(checkout)).resolve()  # gitingest's parse_local_dir_path
        self.root = str(self.root_path)
        self.max_file_size = max_file_size
        gitingest = gitingest_limits()
        self.max_files = limits.files or gitingest.MAX_FILES
        self.max_total = limits.total_bytes or gitingest.MAX_TOTAL_SIZE_BYTES
        self.max_depth = gitingest.MAX_DIRECTORY_DEPTH
        self.walk_limit: str | None = None  # the first limit that left something out
        self.warnings: list[str] = []  # what was worked around (an ignore file not read as gitingest would)
        self.listings, found = list_all(self.root)
        patterns = patterns_of(self.root, found, self.warnings)
        self.spec = IgnoreSpec(patterns)
        self.total_files = 0
        self.total_size = 0
        slug = self.root_path.name if str(checkout) == "." else str(checkout).strip("/")
        self.tree = _Node(_DIR, self.root_path.name or slug, ".")
        self._walk(self.tree, "", 0, 0)

    def _abs(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def _limit(self, name: str) -> None:
        if self.walk_limit is None:
            self.walk_limit = name

    def _walk(self, node: _Node, rel_dir: str, depth: int, above: int) -> None:
        """gitingest's ``_process_node``: same limits, same order, same skips."""
        if depth > self.max_depth:
            if self.listings.get(rel_dir, True):
                self._limit("depth")
            return
        if self.total_files >= self.max_files or self.total_size >= self.max_total:
            if self.listings.get(rel_dir, True):
                self._limit("max_files" if self.total_files >= self.max_files else "max_total_bytes")
            return
        entries = self.listings.get(rel_dir)
        if entries is None:  # unreadable in the first pass: let listing it raise as gitingest's iterdir would
            with os.scandir(self._abs(rel_dir)) as it:
                entries = sorted(it, key=entry_order)
        spec = self.spec
        for entry in entries:
            name = entry.name
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if spec.excluded(rel, name, above):
                continue
            if entry.is_symlink():
                child = _Node(_SYMLINK, name, rel)
                child.target = Path(os.readlink(entry.path)).name
                self.total_files += 1
                node.children.append(child)
                node.file_count += 1
            elif entry.is_file():
                size = entry.stat().st_size
                if size > self.max_file_size:
                    continue
                if self.total_files + 1 > self.max_files:
                    self._limit("max_files")
                    continue
                if self.total_size + size > self.max_total:
                    self._limit("max_total_bytes")
                    continue
                self.total_files += 1
                self.total_size += size
                node.children.append(_Node(_FILE, name, rel, size))
                node.size += size
                node.file_count += 1
            elif entry.is_dir():
                child = _Node(_DIR, name, rel)
                self._walk(child, rel, depth + 1, above | spec.segment(name)[1])
                if not child.children:
                    continue
                node.children.append(child)
                node.size += child.size
                node.file_count += child.file_count
        node.children.sort(key=_sort_key)

    # --- output ----------------------------------------------------------------------------------------------

    def tree_text(self) -> str:
        """gitingest's ``"Directory structure:\\n" + _create_tree_structure(...)``."""
        out = ["Directory structure:\n"]

        def add(node: _Node, prefix: str, is_last: bool) -> None:
            display = node.name
            if node.kind == _DIR:
                display += "/"
            elif node.kind == _SYMLINK:
                display += " -> " + node.target
            out.append(f"{prefix}{'└── ' if is_last else '├── '}{display}\n")
            if node.kind == _DIR and node.children:
                prefix += "    " if is_last else "│   "
                last = len(node.children) - 1
                for i, child in enumerate(node.children):
                    add(child, prefix, i == last)

        add(self.tree, "", True)
        return "".join(out)

    def leaves(self) -> Iterator[_Node]:
        """Files and symlinks in gitingest's output order (depth first, sorted children)."""
        stack = [iter(self.tree.children)]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
            elif child.kind == _DIR:
                stack.append(iter(child.children))
            else:
                yield child

    def content_pieces(self) -> Iterator[str]:
        """gitingest's ``_gather_file_contents(root)`` in pieces: each file's block, "\\n" between blocks.

        A file is read only when its piece is asked for."""
        encodings = preferred_encodings()
        first = True
        for leaf in self.leaves():
            if not first:
                yield "\n"
            first = False
            if leaf.rel in self.absent:
                raise Absent(leaf.rel)
            if leaf.kind == _SYMLINK:
                yield f"{SEPARATOR}\nSYMLINK: {leaf.rel} -> {leaf.target}\n{SEPARATOR}\n\n\n"
            else:
                text = file_text(self._abs(leaf.rel), leaf.name, leaf.size, encodings)
                yield f"{SEPARATOR}\nFILE: {leaf.rel}\n{SEPARATOR}\n{text}\n\n"
