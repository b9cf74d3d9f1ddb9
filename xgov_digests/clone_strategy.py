"""The clone strategy (``ingest.clone_filter``): download only the blobs a digest can read, same digest.

``off`` is a full shallow clone. ``auto`` clones the commit and its trees without blobs
(``--filter=blob:none --no-checkout``) and lists the tree. One fetch then brings every
``.gitignore``/``.gitingestignore``/``.gitattributes`` file and every path that gitingest's default ignore patterns
keep: a folder whose every path is kept is asked for as its tree with ``--filter=blob:limit=<max_file_size+1>``, so
its blobs over ``max_file_size`` (which the walk skips) stay on the server; other paths are asked for one by one.
A non-cone sparse checkout writes exactly the fetched paths, with git's own checkout (``.gitattributes``
conversions apply). The ignore files on disk then give the digest's own patterns
(:func:`xgov_digests.digest.ignore_spec`); a path they keep that the defaults drop (a negation) comes in a second
fetch. A server that ignores filters (git: "filtering not recognized by server") has sent every blob: the whole
tree is checked out, as a full clone would be. Afterwards the checkout is no longer a partial clone, so no later
git command can fetch anything lazily.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from xgov_digests.backoff import attempts as retry_attempts
from xgov_digests.clone import Checkout, CloneError, _last_line, _run, clone
from xgov_digests.digest import IgnoreSpec, ignore_spec
from xgov_digests.logs import redact

log = logging.getLogger(__name__)

CLONE_FILTERS = ("auto", "off")
PARTIAL_CLONE_ARGS = ("--filter=blob:none", "--no-checkout")
# Read before the walk's paths are known: the digest's ignore files, and git's checkout conversions.
_IGNORE_FILES = (".gitignore", ".gitingestignore")
ALWAYS_FETCHED = frozenset({*_IGNORE_FILES, ".gitattributes"})
_GIT = ["git", "-c", "core.symlinks=true", "-c", "core.longpaths=true", "-c", "maintenance.auto=false",
        "-c", "gc.auto=0", "-c", "credential.helper="]  # fmt: skip
_PATTERN_SPECIAL = re.compile(r"([\\*?\[\] !#])")
_BLOB, _LINK, _GITLINK = "blob", "link", "gitlink"


@dataclass(frozen=True)
class TreeEntry:
    """One path of HEAD's tree: ``kind`` is blob (a file), link (a symlink) or gitlink (a submodule)."""

    path: str
    kind: str
    oid: str = ""


@dataclass(frozen=True)
class Tree:
    """HEAD's paths, and the tree object of every folder ('' is the root)."""

    entries: list[TreeEntry]
    folders: dict[str, str]


_MAX_WANTS = 20_000  # more objects than this are left to the checkout's own batch fetch (command-line length)


def clone_repo(
    url: str, dest: Path, *, clone_filter: str = "auto", timeout: float = 300.0, retries: int = 2,
    backoff: float = 1.0, max_file_size: int = 524288,
) -> Checkout:  # fmt: skip
    """Clone ``url`` into ``dest`` with the strategy ``clone_filter``; the work tree digests like a full clone's
    (for a digest with this ``max_file_size``)."""
    if clone_filter not in CLONE_FILTERS:
        raise ValueError(f"clone_filter must be one of {CLONE_FILTERS}, got {clone_filter!r}")
    if clone_filter == "off":
        return clone(url, dest, timeout=timeout, retries=retries, backoff=backoff)
    checkout = clone(url, dest, timeout=timeout, retries=retries, backoff=backoff, extra_args=PARTIAL_CLONE_ARGS)
    step = _Steps(dest, time.monotonic() + timeout, retries, backoff, max_file_size)  # one more timeout after it
    if not step.missing():
        log.info("server sent every blob (no filter support): full checkout", extra={"url": redact(url)})
        step.git("read-tree", "-mu", "HEAD")
    else:
        tree = list_tree(step)
        if any(e.kind == _LINK and e.path.rpartition("/")[2] in _IGNORE_FILES for e in tree.entries):
            step.git("read-tree", "-mu", "HEAD", attempts=retries + 1)  # a symlinked ignore file: check out all
        else:
            first = walk_paths(tree.entries, ignore_spec(dest)) | always_fetched(tree.entries)
            step.fetch(first, tree)
            step.check_out(tree)
            wanted = walk_paths(tree.entries, ignore_spec(dest))  # the patterns of the ignore files now on disk
            if not wanted <= first:
                step.fetch(wanted - first, tree)
                step.check_out(tree)
            if step.skipped and _reencodes(dest, tree.entries):  # a skipped blob may shrink on disk: fetch it
                step.fetch(step.skipped, tree, whole=True)
                step.check_out(tree)
    step.end_partial_clone()
    return checkout


def _reencodes(dest: Path, entries: list[TreeEntry]) -> bool:
    """Does a ``.gitattributes`` ask for ``working-tree-encoding`` (which can make a file smaller on disk)?"""
    for entry in entries:
        if entry.kind == _BLOB and entry.path.rpartition("/")[2] == ".gitattributes":
            with contextlib.suppress(OSError):
                if b"working-tree-encoding" in (dest / entry.path).read_bytes():
                    return True
    return False


class _Steps:
    """The git commands after the clone, each bounded by what is left of the clone's timeout."""

    def __init__(self, dest: Path, deadline: float, retries: int, backoff: float, max_file_size: int) -> None:
        self.dest = dest
        self.deadline = deadline
        self.retries = retries
        self.backoff = backoff
        self.max_file_size = max_file_size
        self.fetched: set[str] = set()  # paths asked for
        self.skipped: set[str] = set()  # paths asked for whose blobs the size filter left on the server

    def git(self, *args: str, attempts: int = 1) -> str:
        error = ""
        for _ in retry_attempts(attempts - 1, self.backoff):
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise CloneError("timed out during the partial checkout")
            result = _run([*_GIT, *args], left, cwd=self.dest)
            if result.returncode == 0:
                return result.stdout
            error = _last_line(result.stderr)
        command = next(a for a in args if not a.startswith("-") and "=" not in a)
        raise CloneError(f"git {command} failed during the partial checkout: {error}")

    def missing(self) -> set[str]:
        """The objects the server left out (none: it ignored the filter). Lists them without fetching any."""
        out = self.git("rev-list", "--objects", "--missing=print", "HEAD")
        return {line[1:] for line in out.splitlines() if line.startswith("?")}

    def fetch(self, paths: set[str], tree: Tree, *, whole: bool = False) -> None:
        """One fetch for ``paths``: fully kept folders as trees under the size filter (unless ``whole``), the rest
        and every ignore file blob by blob (a blob asked for by name is always sent)."""
        folders, singles = cover(paths, tree.entries)
        by_path = {e.path: e.oid for e in tree.entries}
        always = always_fetched(tree.entries)
        wants = sorted({tree.folders[f] for f in folders} | {by_path[p] for p in singles | (paths & always)})
        self.fetched |= paths
        if whole:
            wants = sorted({by_path[p] for p in paths})
        if len(wants) > _MAX_WANTS:
            self.skipped = set()
            return  # the checkout fetches what it needs, in one batch
        limit = () if whole else (f"--filter=blob:limit={self.max_file_size + 1}",)
        # --refetch (git >= 2.36): ask for the trees although they are here, so the server walks them for blobs
        self.git("-c", "fetch.negotiationAlgorithm=noop", "fetch", "--refetch", "--quiet", "--no-tags",
                 "--no-write-fetch-head", "--recurse-submodules=no", *limit, "origin", *wants,
                 attempts=self.retries + 1)  # fmt: skip
        missing = self.missing()
        self.skipped = {p for p in self.fetched if by_path[p] in missing}

    def check_out(self, tree: Tree) -> None:
        """Write the fetched paths, less those left on the server: a non-cone sparse checkout that fetches nothing."""
        patterns = sparse_patterns(self.fetched, tree.entries, self.skipped)
        if any("\n" in p or "\r" in p for p in patterns):  # a pattern is one line: check out the whole tree
            self.git("read-tree", "-mu", "HEAD", attempts=self.retries + 1)
            return
        sparse = self.dest / ".git" / "info" / "sparse-checkout"
        sparse.parent.mkdir(parents=True, exist_ok=True)
        sparse.write_bytes(b"".join(os.fsencode(p) + b"\n" for p in patterns))
        self.git("-c", "core.sparseCheckout=true", "read-tree", "-mu", "HEAD", attempts=self.retries + 1)

    def end_partial_clone(self) -> None:
        """Missing blobs become plain missing objects: no later git command can fetch them behind our back."""
        # Its promisor and partialclonefilter keys go with it. Where git also set extensions.partialClone, a lazy
        # fetch now fails instead of reaching the network.
        self.git("config", "--remove-section", "remote.origin")


def list_tree(step: _Steps) -> Tree:
    """HEAD's paths, kinds and objects (``ls-tree`` reads trees only: no blob is fetched)."""
    entries, folders = [], {"": step.git("rev-parse", "HEAD^{tree}").strip()}
    for line in step.git("ls-tree", "-r", "-t", "--full-tree", "HEAD").splitlines():
        meta, _, quoted = line.partition("\t")
        mode, kind, oid = meta.split(" ")
        path = unquote(quoted)
        if kind == "tree":
            folders[path] = oid
            continue
        kind = _GITLINK if mode == "160000" else _LINK if mode == "120000" else _BLOB
        entries.append(TreeEntry(path, kind, oid))
    return Tree(entries, folders)


_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def unquote(path: str) -> str:
    """A path as git prints it (C-quoted when it holds non-ASCII or special bytes) -> the name on disk."""
    if not path.startswith('"'):
        return path
    body, out, i = path[1:-1], bytearray(), 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out += ch.encode()
            i += 1
        elif body[i + 1] in _ESCAPES:
            out.append(_ESCAPES[body[i + 1]])
            i += 2
        else:
            out.append(int(body[i + 1 : i + 4], 8))
            i += 4
    return os.fsdecode(bytes(out))


def always_fetched(entries: Iterable[TreeEntry]) -> set[str]:
    """Every ignore and attributes file, wherever it is (the digest loads ignore files from ignored folders too)."""
    return {e.path for e in entries if e.kind != _GITLINK and e.path.rpartition("/")[2] in ALWAYS_FETCHED}


def walk_paths(entries: Iterable[TreeEntry], spec: IgnoreSpec) -> set[str]:
    """The files and symlinks that the digest's walk does not drop by pattern (its size and count limits need the
    files on disk, so every such path is kept whatever its size)."""
    keep: set[str] = set()
    dirs: dict[str, tuple[bool, int]] = {"": (False, 0)}  # folder -> (pruned, bits of its segments)

    def folder(rel: str) -> tuple[bool, int]:
        known = dirs.get(rel)
        if known is None:
            parent, _, name = rel.rpartition("/")
            pruned, above = folder(parent)
            if not pruned:
                pruned = spec.excluded(rel, name, above)
                above |= spec.segment(name)[1]
            dirs[rel] = known = (pruned, above)
        return known

    for entry in entries:
        if entry.kind == _GITLINK:
            continue
        parent, _, name = entry.path.rpartition("/")
        pruned, above = folder(parent)
        if not pruned and not spec.excluded(entry.path, name, above):
            keep.add(entry.path)
    return keep


def cover(paths: set[str], entries: list[TreeEntry]) -> tuple[set[str], set[str]]:
    """``paths`` as (folders whose every entry is in ``paths``, outermost only; the other paths)."""
    total: Counter[str] = Counter()
    wanted: Counter[str] = Counter()
    for entry in entries:
        for folder in _folders(entry.path):
            total[folder] += 1
            if entry.path in paths:
                wanted[folder] += 1
    folders, singles = set(), set()
    for path in paths:
        full = next((f for f in _folders(path) if wanted[f] == total[f]), None)
        if full is None:
            singles.add(path)
        else:
            folders.add(full)
    return folders, singles


def sparse_patterns(paths: set[str], entries: list[TreeEntry], leave_out: set[str] = frozenset()) -> list[str]:
    """Anchored, escaped non-cone patterns for ``paths`` less ``leave_out``: a folder whose every entry is wanted
    is one pattern ('/*' for the root)."""
    folders, singles = cover(paths, entries)
    out = sorted(f"/{_escape(f)}/" if f else "/*" for f in folders) + sorted(f"/{_escape(p)}" for p in singles)
    return out + sorted(f"!/{_escape(p)}" for p in leave_out)


def _folders(path: str) -> list[str]:
    """'' and every folder above ``path``, outermost first: 'a/b/c' -> ['', 'a', 'a/b']."""
    parts = path.split("/")[:-1]
    return ["", *("/".join(parts[: i + 1]) for i in range(len(parts)))]


def _escape(path: str) -> str:
    return _PATTERN_SPECIAL.sub(r"\\\1", path)
