"""What a digest of a checkout may read, known from names alone: gitingest's default ignore patterns with the
checkout's ignore files added (:func:`ignore_spec`), and the order the walk visits a folder's entries
(:func:`walk_order`). The walk (``walk.py``) builds on them, and so does the clone's plan of what to download
(``xgov_digests/clone/strategy.py``), which runs in the shard's own process.

Importable without gitingest: its default patterns are read from gitingest's own ``utils/ignore_patterns.py``, a
plain module of constants, without running the gitingest package's ``__init__`` (which imports its web client,
pydantic and loguru, and starts loguru's writer thread: about 0.35 s of CPU a process). The shard process plans
every clone and so never imports gitingest; the digest children, which do, share the very same set.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from xgov_digests.digest.ignore_files import IGNORE_FILES, parse_ignore_file
from xgov_digests.digest.patterns import IgnoreSpec

_PATTERNS_MODULE = "gitingest.utils.ignore_patterns"
_defaults: set[str] | None = None


@dataclass(frozen=True)
class Limits:
    """How much of a checkout is walked (``ingest.max_files``, ``ingest.max_total_bytes``); 0 = gitingest's own."""

    files: int = 0
    total_bytes: int = 0


def default_patterns() -> set[str]:
    """gitingest's ``DEFAULT_IGNORE_PATTERNS``: the module's own set where gitingest is imported, else the same
    module file run on its own. Either way a set built by the same statements under the same hash seed, so it
    iterates in the same order (which decides conflicting negations). Never mutate it: copy it."""
    global _defaults
    loaded = sys.modules.get(_PATTERNS_MODULE)
    if loaded is not None:
        return loaded.DEFAULT_IGNORE_PATTERNS  # type: ignore[no-any-return]
    if _defaults is None:
        package = importlib.util.find_spec("gitingest")  # a top-level name: found, not imported
        if package is None or not package.submodule_search_locations:
            raise ModuleNotFoundError("gitingest is not installed: make install")
        path = Path(next(iter(package.submodule_search_locations))) / "utils" / "ignore_patterns.py"
        spec = importlib.util.spec_from_file_location("xgov_digests.digest._gitingest_patterns", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _defaults = module.DEFAULT_IGNORE_PATTERNS
    return _defaults


def walk_order(name: str, is_file: bool) -> tuple[int, str, str]:
    """Where an entry comes in its folder: gitingest's output order (README first, files, dotfiles, then folders and
    symlinks), names equal but for case by code point. ``is_file``: a regular file, not a symlink."""
    lower = name.lower()
    if is_file:
        group = 0 if lower == "readme" or lower.startswith("readme.") else 1 if not lower.startswith(".") else 2
    else:
        group = 3 if not lower.startswith(".") else 4
    return group, lower, name


def entry_order(entry: os.DirEntry[str]) -> tuple[int, str, str]:
    """:func:`walk_order` of a folder entry (a link to a file is not a file)."""
    try:
        is_file = not entry.is_symlink() and entry.is_file()
    except OSError:
        is_file = False
    return walk_order(entry.name, is_file)


def _exists(path: str) -> bool:
    try:
        os.stat(path)
    except (OSError, ValueError):
        return False
    return True


def list_all(root: str) -> tuple[dict[str, list[os.DirEntry[str]]], dict[str, list[str]]]:
    """``Path.rglob``'s walk of ``root`` (pre-order, symlinked directories not followed, each folder in
    :func:`walk_order`): each folder's listing (by its path relative to ``root``), and the folders holding each
    ignore file (rglob's ``exists()`` follows links). Iterative: a checkout may nest folders deeper than Python's
    recursion limit."""
    listings: dict[str, list[os.DirEntry[str]]] = {}
    found: dict[str, list[str]] = {name: [] for name in IGNORE_FILES}
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        path = f"{root}/{rel_dir}" if rel_dir else root
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=entry_order)  # the commit's order, not the disk's
        except OSError:
            for name in IGNORE_FILES:
                if _exists(f"{path}/{name}"):
                    found[name].append(rel_dir)
            continue
        listings[rel_dir] = entries
        for entry in entries:
            if entry.name in found and (not entry.is_symlink() or _exists(entry.path)):
                found[entry.name].append(rel_dir)
        subdirs = []
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                subdirs.append(f"{rel_dir}/{entry.name}" if rel_dir else entry.name)
        stack.extend(reversed(subdirs))
    return listings, found


def patterns_of(root: str, found: dict[str, list[str]], warnings: list[str]) -> set[str]:
    """gitingest's ``process_patterns()`` then ``_apply_gitignores()``: the default patterns, then each ignore file's
    (``found``: the folders holding it), with the same set operations in the same order."""
    patterns = default_patterns().copy()
    for name in IGNORE_FILES:
        loaded: set[str] = set()
        for rel_dir in found[name]:
            loaded.update(parse_ignore_file(root, rel_dir, name, warnings))
        patterns.update(loaded)
    return patterns


def ignore_spec(checkout: Path) -> IgnoreSpec:
    """The patterns a digest of ``checkout`` applies: gitingest's defaults, then every ignore file found in it.

    Only the ignore files on disk count, so a checkout holding just those gives the spec of the full checkout."""
    root = str(Path(str(checkout)).resolve())  # as the walk resolves it (gitingest's parse_local_dir_path)
    return IgnoreSpec(patterns_of(root, list_all(root)[1], []))
