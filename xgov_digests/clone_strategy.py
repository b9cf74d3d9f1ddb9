"""The clone strategy (``ingest.clone_filter``): download only the blobs a digest can read, same digest.

``off`` is a full shallow clone. ``auto`` clones the commit and its trees without blobs
(``--filter=blob:none --no-checkout``), lists the tree, and checks out (non-cone sparse checkout, one batch fetch)
every ``.gitignore``/``.gitingestignore``/``.gitattributes`` file plus every path that gitingest's default ignore
patterns keep. The ignore files on disk then give the digest's own patterns (:func:`xgov_digests.digest.ignore_spec`);
when they keep a path that the defaults drop (a negation), a second batch fetches it. Paths the walk skips are never
downloaded; files it reads are on disk, written by git's own checkout (so ``.gitattributes`` conversions apply).
A server that ignores the filter (git: "filtering not recognized by server") has sent every blob: the whole tree is
checked out, as a full clone would be. Afterwards the checkout is no longer a partial clone, so nothing can be
fetched lazily later.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

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


def clone_repo(
    url: str, dest: Path, *, clone_filter: str = "auto", timeout: float = 300.0, retries: int = 2,
    backoff: float = 1.0,
) -> Checkout:  # fmt: skip
    """Clone ``url`` into ``dest`` with the strategy ``clone_filter``; the work tree digests like a full clone's."""
    if clone_filter not in CLONE_FILTERS:
        raise ValueError(f"clone_filter must be one of {CLONE_FILTERS}, got {clone_filter!r}")
    if clone_filter == "off":
        return clone(url, dest, timeout=timeout, retries=retries, backoff=backoff)
    checkout = clone(url, dest, timeout=timeout, retries=retries, backoff=backoff, extra_args=PARTIAL_CLONE_ARGS)
    step = _Steps(dest, time.monotonic() + timeout, retries, backoff)  # the steps after the clone share one timeout
    if not step.missing_blobs():
        log.info("server sent every blob (no filter support): full checkout", extra={"url": redact(url)})
        step.check_out(None, [])
    else:
        entries = list_tree(step)
        if any(e.kind == _LINK and e.path.rpartition("/")[2] in _IGNORE_FILES for e in entries):
            step.check_out(None, entries)  # a symlinked ignore file may point anywhere in the tree
        else:
            step.check_out(walk_paths(entries, ignore_spec(dest)) | always_fetched(entries), entries)
            wanted = walk_paths(entries, ignore_spec(dest))  # the patterns of the ignore files now on disk
            if not wanted <= step.checked_out:
                step.check_out(step.checked_out | wanted, entries)
    step.end_partial_clone()
    return checkout


class _Steps:
    """The git commands after the clone, each bounded by what is left of the clone's timeout."""

    def __init__(self, dest: Path, deadline: float, retries: int, backoff: float) -> None:
        self.dest = dest
        self.deadline = deadline
        self.retries = retries
        self.backoff = backoff
        self.checked_out: set[str] = set()

    def git(self, *args: str, attempts: int = 1, ok: tuple[int, ...] = (0,)) -> str:
        error = ""
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                time.sleep(self.backoff * 2 ** (attempt - 2))
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise CloneError("timed out during the partial checkout")
            result = _run([*_GIT, *args], left, cwd=self.dest)
            if result.returncode in ok:
                return result.stdout
            error = _last_line(result.stderr)
        command = next(a for a in args if not a.startswith("-") and "=" not in a)
        raise CloneError(f"git {command} failed during the partial checkout: {error}")

    def missing_blobs(self) -> bool:
        """Did the server leave blobs out (it honoured the filter)? Lists them without fetching any."""
        out = self.git("rev-list", "--objects", "--missing=print", "HEAD")
        return any(line.startswith("?") for line in out.splitlines())

    def check_out(self, paths: set[str] | None, entries: list[TreeEntry]) -> None:
        """Check out ``paths`` (None: the whole tree); git fetches their missing blobs in one batch (retried on
        failure like the clone)."""
        patterns = None if paths is None else sparse_patterns(paths, entries)
        if patterns is None or any("\n" in p or "\r" in p for p in patterns):  # a pattern is one line
            self.git("read-tree", "-mu", "HEAD", attempts=self.retries + 1)
            return
        sparse = self.dest / ".git" / "info" / "sparse-checkout"
        sparse.parent.mkdir(parents=True, exist_ok=True)
        sparse.write_bytes(b"".join(os.fsencode(p) + b"\n" for p in patterns))
        self.git("-c", "core.sparseCheckout=true", "read-tree", "-mu", "HEAD", attempts=self.retries + 1)
        self.checked_out = set(paths or ())

    def end_partial_clone(self) -> None:
        """Missing blobs become plain missing objects: no later git command can fetch them behind our back."""
        self.git("config", "--remove-section", "remote.origin")  # its promisor and partialclonefilter keys
        self.git("config", "--unset-all", "extensions.partialClone", ok=(0, 5))  # 5: not set (git < 2.42 sets none)


def list_tree(step: _Steps) -> list[TreeEntry]:
    """HEAD's paths and kinds (``ls-tree`` reads trees only: no blob is fetched)."""
    entries = []
    for line in step.git("ls-tree", "-r", "--full-tree", "HEAD").splitlines():
        meta, _, path = line.partition("\t")
        mode = meta.split(" ", 1)[0]
        kind = _GITLINK if mode == "160000" else _LINK if mode == "120000" else _BLOB
        entries.append(TreeEntry(unquote(path), kind))
    return entries


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


def sparse_patterns(paths: set[str], entries: list[TreeEntry]) -> list[str] | None:
    """Anchored, escaped non-cone patterns for ``paths``: a folder whose every entry is wanted is one pattern.
    None when every entry is wanted (check out the whole tree)."""
    total: Counter[str] = Counter()
    wanted: Counter[str] = Counter()
    for entry in entries:
        for folder in _folders(entry.path):
            total[folder] += 1
            if entry.path in paths:
                wanted[folder] += 1
    if entries and wanted[""] == total[""]:
        return None
    out = set()
    for path in paths:
        full = next((f for f in _folders(path)[1:] if wanted[f] == total[f]), None)
        out.add(f"/{_escape(full)}/" if full else f"/{_escape(path)}")
    return sorted(out)


def _folders(path: str) -> list[str]:
    """'' and every folder above ``path``, outermost first: 'a/b/c' -> ['', 'a', 'a/b']."""
    parts = path.split("/")[:-1]
    return ["", *("/".join(parts[: i + 1]) for i in range(len(parts)))]


def _escape(path: str) -> str:
    return _PATTERN_SPECIAL.sub(r"\\\1", path)
