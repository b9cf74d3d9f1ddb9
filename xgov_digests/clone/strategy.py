"""The clone strategy (``ingest.clone_filter``): download only the blobs a digest can read, same digest.

Both strategies clone without checking out, list HEAD's tree (NUL-separated, stopped past
``ingest.max_tree_entries`` records: a tree bomb costs one bounded listing, then the repo fails), and check out
through the same rule: a blob over ``max_file_size`` (which the walk skips) is never written, unless an attribute
can make it smaller on checkout (``ident``, ``filter``, ``working-tree-encoding``; see :data:`SHRINKING`) and it is at
most ``SHRINK_FACTOR`` times ``max_file_size``.

``off`` is a full shallow clone (every blob is here, with its size from ``ls-tree -l``). ``auto`` clones the commit
and its trees without blobs (``--filter=blob:none --no-checkout``). One fetch then brings every
``.gitignore``/``.gitingestignore``/``.gitattributes`` file and every path that gitingest's default ignore patterns
keep: a folder whose every path is kept is asked for as its tree with ``--filter=blob:limit=<max_file_size+1>``, so
its blobs over ``max_file_size`` stay on the server; other paths are asked for one by one (the server sends a blob
asked for by name whatever its size: the fetch is stopped once its download passes what every blob asked for could
weigh under the limit, and then the folders and the named blobs are fetched apart, the named ones by halves, so an
oversized blob costs at most what the repo's files under the limit could weigh, and it is left out). A non-cone
sparse checkout writes exactly the fetched paths less the oversized ones, with git's own checkout
(``.gitattributes`` conversions apply).
The ignore files on disk then give the digest's own patterns (``xgov_digests.digest.rules.ignore_spec``); a path
they keep that the defaults drop (a negation) comes in a second fetch, and oversized blobs that an attribute may shrink
in a third, under the larger limit. A server that ignores filters (git: "filtering not recognized by server") has
sent every blob: the checkout is ``off``'s. Afterwards the checkout is no longer a partial clone, so no later git
command can fetch anything lazily.

Under both, what the repo takes under TMPDIR (its packs, then the blobs a checkout writes) is bounded by
``ingest.max_repo_bytes``: past it the git command is killed and the repo fails (permanent).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xgov_digests.clone.git import (
    PERMANENT,
    Checkout,
    CloneError,
    GitResult,
    clone,
    failure_kind,
    last_line,
    object_sizes,
    pack_bytes,
    run_git,
    sweep_partial_packs,
    too_large,
)
from xgov_digests.core.backoff import attempts as retry_attempts
from xgov_digests.core.logs import redact
from xgov_digests.core.params import CloneSettings
from xgov_digests.digest.build import Digest
from xgov_digests.digest.patterns import IgnoreSpec
from xgov_digests.digest.rules import ignore_spec, walk_order

log = logging.getLogger(__name__)

CLONE_FILTERS = ("auto", "off")
PARTIAL_CLONE_ARGS = ("--filter=blob:none", "--no-checkout")
FULL_CLONE_ARGS = ("--no-checkout",)
# Read before the walk's paths are known: the digest's ignore files, and git's checkout conversions.
_IGNORE_FILES = (".gitignore", ".gitingestignore")
ALWAYS_FETCHED = frozenset({*_IGNORE_FILES, ".gitattributes"})
# The attributes under which a checked-out file can be smaller than its blob: ``ident`` collapses ``$Id: ... $``,
# a filter driver's smudge may write anything (none is configured: see xgov_digests/clone/git.py), and
# ``working-tree-encoding`` re-encodes (UTF-16 to UTF-8 halves a file). ``text``/``eol`` conversions only add CRs.
SHRINKING = ("ident", "filter", "working-tree-encoding")
SHRINK_FACTOR = 16  # an oversized blob under a SHRINKING attribute is checked out up to this many max_file_size
PACK_SLACK = 64 << 10  # a pack's header, trailer and index beside its objects
_PATTERN_SPECIAL = re.compile(r"([\\*?\[\] !#])")
_BLOB, _LINK, _GITLINK = "blob", "link", "gitlink"


def pack_room(size: int) -> int:
    """The most a blob of ``size`` bytes can take in a pack: zlib's worst case on incompressible bytes plus the
    object's header."""
    return size + size // 1000 + 64


# A digest's cut falls after about ``max_summary_bytes`` of text; the files checked out before the digest runs are
# those whose blocks start before CUT_MARGIN x that plus CUT_SLACK (a binary's or a notebook's block is shorter than
# its blob, a latin-1 file's longer): past it, a file stands on disk with its size only until the digest asks for it.
CUT_MARGIN = 1.25
CUT_SLACK = 64 << 10
_BLOCK_BYTES = 2 * 48 + 16  # a file's block beside its text and path: two separator lines, "FILE: ", newlines


@dataclass(frozen=True)
class CutCheckout(Checkout):
    """A checkout whose files past the digest's estimated cut stand on disk with their size only (``absent``:
    path -> size), for the walk to see; :meth:`bring` checks out the ones a digest asks for."""

    absent: dict[str, int] = field(default_factory=dict)
    _bring: Callable[[list[str]], None] | None = field(default=None, repr=False)
    _finish: Callable[[], None] | None = field(default=None, repr=False)

    def finish(self) -> None:
        """The digest is done: the clone stops being a partial clone (no later git command can fetch)."""
        if self._finish is not None:
            self._finish()

    def bring(self, paths: list[str]) -> None:
        """Check out ``paths`` (of :attr:`absent`): they leave ``absent``."""
        if self._bring is not None:
            self._bring(paths)
        for path in paths:
            self.absent.pop(path, None)


def next_batch(needs: Iterable[str], absent: dict[str, int], left: int) -> list[str]:
    """The files of ``needs`` (in the digest's order) to check out for a digest that has ``left`` characters to go
    before its cut: as many as those characters, with the margin, could reach; at least one."""
    budget, est, out = left * CUT_MARGIN + CUT_SLACK, 0.0, []
    for path in needs:
        if out and est > budget:
            break
        out.append(path)
        est += absent.get(path, 0) + len(path) + _BLOCK_BYTES
    return out


def digest_cut(checkout: Checkout, cut: int, digest: Callable[[frozenset[str]], Digest]) -> tuple[Digest, float]:
    """``digest(absent)`` of ``checkout`` (cut at ``cut`` bytes), checking out the next files each time it reaches
    one still absent; returns the digest and the seconds spent checking out."""
    absent = checkout.absent if isinstance(checkout, CutCheckout) else {}
    bringing = 0.0
    while True:
        result = digest(frozenset(absent))
        if not result.needs or not isinstance(checkout, CutCheckout):
            if isinstance(checkout, CutCheckout):
                checkout.finish()
            return result, bringing
        start = time.perf_counter()
        checkout.bring(next_batch(result.needs, absent, cut - result.reached))
        bringing += time.perf_counter() - start


@dataclass(frozen=True)
class TreeEntry:
    """One path of HEAD's tree: ``kind`` is blob (a file), link (a symlink) or gitlink (a submodule); ``size`` is
    the blob's size when known (-1 when the blob is not here)."""

    path: str
    kind: str
    oid: str = ""
    size: int = -1


@dataclass(frozen=True)
class Tree:
    """HEAD's paths, and the tree object of every folder ('' is the root)."""

    entries: list[TreeEntry]
    folders: dict[str, str]


def clone_repo(url: str, dest: Path, settings: CloneSettings) -> Checkout:
    """Clone ``url`` into ``dest`` with the strategy ``settings.clone_filter``; the work tree digests like a full
    clone's (for a digest with this ``max_file_size``). A tree of more than ``max_tree_entries`` paths and folders,
    or a download plus checkout of more than ``max_repo_bytes``, is a permanent :class:`CloneError`.

    With ``settings.max_summary_bytes`` (under ``auto``), the files a digest cut there cannot reach are not checked
    out: they stand on disk with their size only, and the result is a :class:`CutCheckout` listing them."""
    if settings.clone_filter not in CLONE_FILTERS:
        raise ValueError(f"clone_filter must be one of {CLONE_FILTERS}, got {settings.clone_filter!r}")
    partial = settings.clone_filter == "auto"
    checkout = clone(url, dest, settings, PARTIAL_CLONE_ARGS if partial else FULL_CLONE_ARGS)
    step = _Steps(dest, time.monotonic() + settings.clone_timeout, settings)
    step.url = url
    step.root_tree = checkout.tree
    if partial and checkout.unfiltered:
        log.info("server sent every blob (no filter support): full checkout", extra={"url": redact(url)})
        _full_checkout(step, list_tree(step, sizes=True))
    elif partial:
        tree = list_tree(step, sizes=False)
        absent = _partial_checkout(step, tree, settings.max_summary_bytes)
        if absent:
            if not step.sized:  # every blob the digest may read is here
                step.end_partial_clone()
            return CutCheckout(
                checkout.path,
                checkout.commit,
                checkout.tree,
                checkout.unfiltered,
                absent=absent,
                _bring=lambda paths: step.bring(tree, paths),
                _finish=step.end_partial_clone if step.sized else None,
            )
    else:
        _full_checkout(step, list_tree(step, sizes=True))
    if partial:
        step.end_partial_clone()
    return checkout


def _full_checkout(step: _Steps, tree: Tree) -> None:
    """Every blob is here: check out the tree less the blobs over ``max_file_size`` that no attribute shrinks."""
    big = {e.path for e in tree.entries if e.kind != _GITLINK and e.size > step.max_file_size}
    if not big:
        step.check_room(sum(max(e.size, 0) for e in tree.entries if e.kind != _GITLINK))
        step.git("read-tree", "-mu", "HEAD", attempts=step.retries + 1)
        return
    step.fetched = {e.path for e in tree.entries if e.kind != _GITLINK}
    step.sizes = {e.oid: e.size for e in tree.entries if e.size >= 0}
    step.skipped = big
    step.check_out(tree)
    shrink = step.may_shrink(big)  # ... unless it may be smaller on disk
    if shrink:
        step.skip_oversized(tree, step.max_file_size * SHRINK_FACTOR)
        step.skipped |= big - shrink
        step.check_out(tree)


def _partial_checkout(step: _Steps, tree: Tree, cut: int | None = None) -> dict[str, int]:
    """Fetch and check out the paths the walk can read, in at most three fetches. With ``cut``, only the ignore and
    attributes files are checked out until the digest's order is known; then :meth:`_Steps.defer` checks out the
    files before the estimated cut and returns the others (path -> size), which stand on disk with their size."""
    if any(e.kind == _LINK and e.path.rpartition("/")[2] in _IGNORE_FILES for e in tree.entries):
        everything = {e.path for e in tree.entries if e.kind != _GITLINK}  # a symlinked ignore file: as off does
        step.fetch(everything, tree)
        step.check_out(tree)
        first, cut, defaults = everything, None, everything
    else:
        defaults = walk_paths(tree.entries, ignore_spec(step.dest))  # nothing on disk yet: gitingest's patterns
        first = defaults | always_fetched(tree.entries)
        fetching = first
        if cut is not None and step.remote_sizes(tree, first):
            # every size is known: fetch the ignore and attributes files, the symlinks, and the files that gitingest's
            # default patterns put before the cut; the rest waits for the digest's order (Steps.defer)
            by_path = {e.path: e for e in tree.entries}
            files = {p for p in first if by_path[p].kind == _BLOB}
            size = {p: step.sizes[by_path[p].oid] for p in files}
            fetching = always_fetched(tree.entries) | (first - files)
            fetching |= before_cut(digest_order(first, tree.entries), size, step.max_file_size, cut)
        step.fetch(fetching, tree)
        if cut is not None:
            step.shown = always_fetched(tree.entries) - step.skipped
        step.check_out(tree)
    if any(e.path.rpartition("/")[2] in _IGNORE_FILES for e in tree.entries):
        wanted = walk_paths(tree.entries, ignore_spec(step.dest))  # the patterns of the ignore files now on disk
    else:
        wanted = defaults
    if not wanted <= first:
        step.fetch(wanted - first, tree)
        if cut is None:
            step.check_out(tree)
    shrink = step.may_shrink(step.skipped)  # left out for their size, but they may be smaller on disk
    if shrink:
        skipped = step.skipped - shrink
        step.fetch(shrink, tree, limit=step.max_file_size * SHRINK_FACTOR)
        step.skipped |= skipped
        if cut is None:
            step.check_out(tree)
    return {} if cut is None else step.defer(tree, wanted, cut)


class _Steps:
    """The git commands after the clone, each bounded by what is left of the clone's timeout."""

    def __init__(self, dest: Path, deadline: float, settings: CloneSettings) -> None:
        self.dest = dest
        self.deadline = deadline
        self.retries = settings.retries
        self.backoff = settings.backoff
        self.max_file_size = settings.max_file_size
        self.max_repo_bytes = settings.max_repo_bytes
        self.max_tree_entries = settings.max_tree_entries
        self.fetched: set[str] = set()  # paths asked for
        self.skipped: set[str] = set()  # paths asked for whose blobs are not checked out (too large)
        self.sizes: dict[str, int] = {}  # blob -> size, of the blobs here
        self.shown: set[str] | None = None  # the fetched paths to check out (None: all but the skipped ones)
        self.url = ""
        self.root_tree = ""  # HEAD's tree, when the clone read it
        self.sized = False  # blob sizes came from the server: files past the cut may not be fetched yet

    def remote_sizes(self, tree: Tree, paths: set[str]) -> bool:
        """Learn the sizes of the blobs of ``paths`` from the server without fetching them (True: all known)."""
        by_path = {e.path: e for e in tree.entries}
        oids = sorted({by_path[p].oid for p in paths if by_path[p].kind == _BLOB})
        got = object_sizes(self.url, oids, max(1.0, min(60.0, self.deadline - time.monotonic())))
        if got is None:
            return False
        self.sizes.update(got)
        self.sized = True
        return True

    def run(
        self,
        *args: str,
        attempts: int = 1,
        max_records: int | None = None,
        stdin: bytes = b"",
        budget: int | None = None,
    ) -> GitResult:
        """Run one git command (retried ``attempts - 1`` times); a failure is classified as the clone's are: a
        broken pack met here is as permanent as in the clone. The repo's packs may not pass ``max_repo_bytes``
        (a permanent failure); with ``budget``, a download of more than that many bytes is stopped and returned
        ``over``, its partial pack removed."""
        error, kind = "", PERMANENT
        for _ in retry_attempts(attempts - 1, self.backoff):
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise CloneError("timed out during the checkout")
            bound = self.max_repo_bytes
            if budget is not None:
                bound = min(bound, pack_bytes(self.dest) + budget)
            result = run_git(args, left, repo=self.dest, max_records=max_records, stdin=stdin, max_bytes=bound)
            if result.over:
                sweep_partial_packs(self.dest)
                if bound == self.max_repo_bytes:
                    raise CloneError(too_large(self.max_repo_bytes), PERMANENT)
                return result
            if result.returncode == 0 or result.cut:
                return result
            error, kind = last_line(result.stderr), failure_kind(result.stderr)
        command = next(a for a in args if not a.startswith("-") and "=" not in a)
        raise CloneError(f"git {command} failed during the checkout: {error}", kind)

    def git(self, *args: str, attempts: int = 1) -> str:
        return self.run(*args, attempts=attempts).stdout.decode("utf-8", "surrogateescape")

    def present(self) -> dict[str, int]:
        """Every blob in the repository's object store, with its size (objects the server left out are not listed,
        and listing never fetches one)."""
        out = self.git(
            "cat-file", "--batch-all-objects", "--unordered", "--batch-check=%(objectname) %(objecttype) %(objectsize)"
        )
        found = {}
        for line in out.splitlines():
            oid, kind, size = line.split(" ")
            if kind == "blob":
                found[oid] = int(size)
        return found

    def fetch(self, paths: set[str], tree: Tree, *, limit: int | None = None) -> None:
        """One fetch for ``paths``: fully kept folders as trees under the size limit (``max_file_size`` unless
        ``limit``), the other paths blob by blob (a blob asked for by name is always sent, whatever its size; a
        ``tree:1`` filter that would bound them loses blobs of nested folders asked for together). The download
        may not pass what that many blobs of ``limit`` bytes can weigh: past it, a blob asked for by name is
        oversized, and the folders and the named blobs are fetched apart (see :meth:`_fetch_by_id`). Then every
        path asked for whose blob is missing or over the limit is left out of the checkout."""
        limit = self.max_file_size if limit is None else limit
        folders, singles = cover(paths, tree.entries)
        by_path = {e.path: e.oid for e in tree.entries}
        # a blob that is also in a folder asked for comes with it, or is left out with it when oversized (asked
        # for by name as well, the server may still leave it out, and the fetch then fails)
        in_folders = {e.oid for e in tree.entries if not folders.isdisjoint(_folders(e.path))}
        trees, named = sorted({tree.folders[f] for f in folders}), sorted({by_path[p] for p in singles} - in_folders)
        self.fetched |= paths
        oversized: set[str] = set()
        budget = (len(in_folders) + len(named)) * pack_room(limit) + PACK_SLACK
        if self._fetch(trees + named, limit, budget=budget if named else None).over:
            if trees:
                self._fetch(trees, limit)
            oversized = self._fetch_by_id(named, limit)
        here = self.present()  # what arrived, with sizes: one listing of the local objects, no lazy fetch
        self.sizes.update(here)
        asked = {e.oid for e in tree.entries if e.path in self.fetched and e.kind != _GITLINK}
        self.skip_oversized(tree, limit, (asked - here.keys()) | oversized)

    def _fetch(self, wants: list[str], limit: int, budget: int | None = None) -> GitResult:
        # --refetch (git >= 2.36): ask for the trees although they are here, so the server walks them for blobs;
        # the wants go on stdin, however many there are
        return self.run(
            "-c",
            "fetch.negotiationAlgorithm=noop",
            "fetch",
            "--refetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--recurse-submodules=no",
            f"--filter=blob:limit={limit + 1}",
            "--stdin",
            "origin",
            stdin="".join(f"{w}\n" for w in wants).encode(),
            attempts=self.retries + 1,
            budget=budget,
        )

    def _fetch_by_id(self, blobs: list[str], limit: int) -> set[str]:
        """Fetch ``blobs`` by name, which a server sends whatever their size: the download is stopped once it
        passes what that many blobs of at most ``limit`` bytes can weigh, and the halves are asked for again,
        down to single blobs. Returns the blobs found over ``limit`` (not fetched): an oversized blob costs at
        most what the blobs asked for with it can weigh, once for each halving that meets it."""
        if not blobs:
            return set()
        if not self._fetch(blobs, limit, budget=len(blobs) * pack_room(limit) + PACK_SLACK).over:
            return set()
        if len(blobs) == 1:
            return set(blobs)
        half = len(blobs) // 2
        return self._fetch_by_id(blobs[:half], limit) | self._fetch_by_id(blobs[half:], limit)

    def check_room(self, writes: int) -> None:
        """A checkout that writes ``writes`` bytes of blobs beside the packs may not pass ``max_repo_bytes``."""
        if pack_bytes(self.dest) + writes > self.max_repo_bytes:
            raise CloneError(too_large(self.max_repo_bytes), PERMANENT)

    def skip_oversized(self, tree: Tree, limit: int, missing: set[str] = frozenset()) -> None:
        """Leave out of the checkout every fetched path whose blob is ``missing`` or larger than ``limit``."""
        by_path = {e.path: e for e in tree.entries}
        here = sorted({by_path[p].oid for p in self.fetched if by_path[p].oid not in missing} - set(self.sizes))
        if here:
            out = self.run(
                "cat-file",
                "--batch-check=%(objectname) %(objectsize)",
                stdin="".join(f"{oid}\n" for oid in here).encode(),
            ).stdout.decode()
            for line in out.splitlines():
                oid, _, size = line.partition(" ")
                if size.isdigit():
                    self.sizes[oid] = int(size)
        self.skipped = {
            p for p in self.fetched if by_path[p].oid in missing or self.sizes.get(by_path[p].oid, limit + 1) > limit
        }

    def may_shrink(self, paths: set[str]) -> set[str]:
        """The ``paths`` (checked-out ``.gitattributes`` apply) that a :data:`SHRINKING` attribute names."""
        if not paths:
            return set()
        out = self.run(
            "check-attr", "-z", "--stdin", *SHRINKING, stdin=b"".join(os.fsencode(p) + b"\0" for p in sorted(paths))
        )
        fields = out.stdout.split(b"\0")
        return {
            os.fsdecode(path)
            for path, _attr, value in zip(fields[0::3], fields[1::3], fields[2::3], strict=False)
            if value not in (b"unspecified", b"unset")
        }

    def defer(self, tree: Tree, wanted: set[str], cut: int) -> dict[str, int]:
        """Check out the files of ``wanted`` whose blocks start before the digest's estimated cut (``cut`` bytes, see
        :data:`CUT_MARGIN`), every symlink and ignore or attributes file, and the files whose size on disk is not
        their blob's (a :data:`SHRINKING` attribute, ``eol=crlf``) or whose name git alone may judge; the other
        files of ``wanted`` are written as files of their blob's size with no content, for the walk to see. Returns
        those (path -> size). Files not fetched yet (their sizes known from the server) are fetched first."""
        by_path = {e.path: e for e in tree.entries}
        known = {p for p in wanted - self.fetched if by_path[p].oid in self.sizes or by_path[p].kind == _LINK}
        big = {p for p in known if self.sizes.get(by_path[p].oid, 0) > self.max_file_size}
        written = (wanted & self.fetched - self.skipped) | (known - big)
        files = {p for p in written if by_path[p].kind == _BLOB}
        real = (written - files) | (always_fetched(tree.entries) - self.skipped) | self._changed_on_disk(tree, files)
        real |= {p for p in files if not _plain(p)}
        size = {p: self.sizes.get(by_path[p].oid, 0) for p in files}
        real |= before_cut(digest_order(written, tree.entries), size, self.max_file_size, cut)
        if real - self.fetched:
            self.fetch(real - self.fetched, tree)
        shrink = self.may_shrink(big)  # over max_file_size, but they may be smaller on disk: as _partial_checkout
        if shrink:
            skipped = self.skipped
            self.fetch(shrink, tree, limit=self.max_file_size * SHRINK_FACTOR)
            self.skipped |= skipped
            real |= shrink
        absent = {p: size[p] for p in files - real}
        self.add(tree, real)
        made: set[str] = set()
        root = os.fspath(self.dest)  # strings, not Paths: a repo may leave thousands of files past the cut
        for path, length in absent.items():
            folder = path.rpartition("/")[0]
            if folder not in made:
                os.makedirs(f"{root}/{folder}", exist_ok=True)
                made.add(folder)
            _placeholder(f"{root}/{path}", length)
        return absent

    def _changed_on_disk(self, tree: Tree, paths: set[str]) -> set[str]:
        """The ``paths`` whose checkout may differ in size from their blob (the checked-out ``.gitattributes``)."""
        if not paths or not any(e.path.rpartition("/")[2] == ".gitattributes" for e in tree.entries):
            return set()
        out = self.run(
            "check-attr",
            "-z",
            "--stdin",
            "eol",
            *SHRINKING,
            stdin=b"".join(os.fsencode(p) + b"\0" for p in sorted(paths)),
        )
        fields = out.stdout.split(b"\0")
        return {
            os.fsdecode(path)
            for path, attr, value in zip(fields[0::3], fields[1::3], fields[2::3], strict=False)
            if (value == b"crlf" if attr == b"eol" else value not in (b"unspecified", b"unset"))
        }

    def bring(self, tree: Tree, paths: list[str]) -> None:
        """Check out ``paths``, which :meth:`defer` left as files of their size only."""
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.dest / path)
        if set(paths) - self.fetched:
            self.fetch(set(paths) - self.fetched, tree)
        self.add(tree, set(paths))

    def add(self, tree: Tree, paths: set[str]) -> None:
        """Write ``paths`` (fetched, not skipped) beside what is checked out, with git's checkout (attributes
        apply). ``checkout-index`` rather than a second sparse ``read-tree -mu``: git 2.39's can mark a path as
        written without writing it (a README.md added to the patterns stayed missing)."""
        assert self.shown is not None
        new = sorted(paths - self.shown - self.skipped)
        if not new:
            return
        by_path = {e.path: e.oid for e in tree.entries}
        self.check_room(sum(self.sizes.get(by_path[p], 0) for p in self.shown | set(new)))
        self.run(
            "checkout-index",
            "--ignore-skip-worktree-bits",
            "-z",
            "--stdin",
            stdin=b"".join(os.fsencode(p) + b"\0" for p in new),
            attempts=self.retries + 1,
        )
        self.shown |= set(new)

    def check_out(self, tree: Tree) -> None:
        """Write the fetched paths, less the skipped ones: a non-cone sparse checkout that fetches nothing."""
        by_path = {e.path: e.oid for e in tree.entries}
        shown = self.fetched - self.skipped if self.shown is None else self.shown - self.skipped
        self.check_room(sum(self.sizes.get(by_path[p], 0) for p in shown))
        patterns = sparse_patterns(shown, tree.entries, self.skipped)
        if any("\n" in p or "\r" in p for p in patterns):  # a pattern is one line: '?' stands for the line break
            if _confusable(tree):
                raise CloneError("the tree has paths that differ only where one holds a line break", PERMANENT)
            patterns = [p.replace("\n", "?").replace("\r", "?") for p in patterns]
        sparse = self.dest / ".git" / "info" / "sparse-checkout"
        sparse.parent.mkdir(parents=True, exist_ok=True)
        sparse.write_bytes(b"".join(os.fsencode(p) + b"\n" for p in patterns))
        self.git("-c", "core.sparseCheckout=true", "read-tree", "-mu", "HEAD", attempts=self.retries + 1)

    def end_partial_clone(self) -> None:
        """Missing blobs become plain missing objects: no later git command can fetch them behind our back."""
        # Its promisor and partialclonefilter keys go with it. Where git also set extensions.partialClone, a lazy
        # fetch now fails instead of reaching the network.
        self.git("config", "--remove-section", "remote.origin")


def before_cut(order: list[str], size: dict[str, int], max_file_size: int, cut: int) -> set[str]:
    """The files of ``order`` (paths in the digest's order; ``size`` gives the files' sizes, symlinks have none)
    whose blocks start before the digest's estimated cut: ``cut`` bytes, with :data:`CUT_MARGIN` and
    :data:`CUT_SLACK`, after the header and the tree (a line a path: at most its path and 8 bytes)."""
    est = 512.0 + sum(len(p) + 8 for p in order)
    budget = cut * CUT_MARGIN + CUT_SLACK
    out = set()
    for path in order:
        if est > budget:
            break
        if path in size and size[path] <= max_file_size:
            out.add(path)
            est += size[path] + len(path) + _BLOCK_BYTES
    return out


def digest_order(paths: Iterable[str], entries: Iterable[TreeEntry]) -> list[str]:
    """``paths`` (files and symlinks) in the digest's order: each folder's README first, then its files, dotfiles,
    then its folders and symlinks (:func:`xgov_digests.digest.rules.walk_order`), depth first."""
    files = {e.path for e in entries if e.kind == _BLOB}
    root: dict[str, Any] = {}
    for path in paths:
        node = root
        *folders, name = path.split("/")
        for folder in folders:
            node = node.setdefault(folder + "/", {})  # a folder's key ends with '/', a file's never does
        node[name] = path

    def ordered(node: dict[str, Any]) -> Iterator[str]:
        return iter(sorted(node, key=lambda k: walk_order(k.rstrip("/"), node[k] in files if k[-1:] != "/" else False)))

    out: list[str] = []
    nodes, names = [root], [ordered(root)]
    while names:
        name = next(names[-1], None)
        if name is None:
            names.pop()
            nodes.pop()
            continue
        value = nodes[-1][name]
        if isinstance(value, dict):
            nodes.append(value)
            names.append(ordered(value))
        else:
            out.append(value)
    return out


def _plain(path: str) -> bool:
    """Can a file at ``path`` be written by us instead of git? Not where git's own checks of a name may refuse it
    (``.git`` in any case or with trailing dots and spaces, 8.3 short names, NTFS streams, backslashes)."""
    if "\\" in path or ":" in path:
        return False
    for part in path.split("/"):
        low = part.lower()
        if part in ("", ".", "..") or low.rstrip(". ") == ".git" or low.startswith("git~"):
            return False
    return True


def _placeholder(path: str, size: int) -> None:
    """A file of ``size`` bytes holding nothing (a hole: no block is written); its folder exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


def _confusable(tree: Tree) -> bool:
    """Does a path with a line break (CR or LF) equal another path of the tree but at its line breaks?"""
    names = {e.path for e in tree.entries} | set(tree.folders)
    by_length: dict[int, list[str]] = {}
    for name in names:
        by_length.setdefault(len(name), []).append(name)
    for name in names:
        breaks = {i for i, ch in enumerate(name) if ch in "\r\n"}
        if breaks and any(
            other != name and all(other[i] == ch for i, ch in enumerate(name) if i not in breaks)
            for other in by_length[len(name)]
        ):
            return True
    return False


def list_tree(step: _Steps, *, sizes: bool = False) -> Tree:
    """HEAD's paths, kinds, objects and (with ``sizes``: every blob is here) sizes, read NUL-separated. Without
    ``sizes``, ``ls-tree`` reads trees only: no blob is fetched. More than ``step.max_tree_entries`` paths and
    folders is a permanent :class:`CloneError`, found after reading that many records and no more."""
    max_entries = step.max_tree_entries
    root = step.root_tree or step.git("rev-parse", "HEAD^{tree}").strip()
    listing = step.run(
        "ls-tree", "-r", "-t", "-z", "--full-tree", *(["-l"] if sizes else []), "HEAD", max_records=max_entries
    )
    if listing.cut:
        raise CloneError(
            f"the tree has more than {max_entries} paths and folders (ingest.max_tree_entries): not checked out",
            PERMANENT,
        )
    entries, folders = [], {"": root}
    for record in listing.stdout.split(b"\0"):
        if not record:
            continue
        meta, _, raw = record.partition(b"\t")
        mode, kind, oid, *size = meta.decode().split()
        path = os.fsdecode(raw)
        if kind == "tree":
            folders[path] = oid
            continue
        kind = _GITLINK if mode == "160000" else _LINK if mode == "120000" else _BLOB
        entries.append(TreeEntry(path, kind, oid, int(size[0]) if size and size[0] != "-" else -1))
    return Tree(entries, folders)


_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def unquote(path: str) -> str:
    """A path as git prints it (C-quoted when it holds non-ASCII or special bytes) -> the name on disk. The tree is
    read with ``-z`` (never quoted); this reads the quoted form that other git output uses."""
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
    """``paths`` (paths of ``entries``) as (folders whose every entry is in ``paths``, outermost only; the other
    paths)."""
    total = _folder_totals(entries)
    wanted: Counter[str] = Counter()
    for path in paths:
        wanted.update(_folders(path))
    folders, singles = set(), set()
    for path in paths:
        full = next((f for f in _folders(path) if wanted[f] == total[f]), None)
        if full is None:
            singles.add(path)
        else:
            folders.add(full)
    return folders, singles


_TOTALS = threading.local()  # each repo thread's last (entries, their folder totals)


def _folder_totals(entries: list[TreeEntry]) -> Counter[str]:
    """How many entries each folder holds, at any depth; kept for the thread's last list of entries (a clone asks
    for the same tree's several times)."""
    held = getattr(_TOTALS, "last", None)
    if held is not None and held[0] is entries:
        return held[1]
    totals: Counter[str] = Counter()
    for entry in entries:
        totals.update(_folders(entry.path))
    _TOTALS.last = (entries, totals)
    return totals


def sparse_patterns(paths: set[str], entries: list[TreeEntry], leave_out: set[str] = frozenset()) -> list[str]:
    """Anchored, escaped non-cone patterns for ``paths`` less ``leave_out``: a folder whose every entry is wanted
    is one pattern ('/*' for the root)."""
    folders, singles = cover(paths, entries)
    out = sorted(f"/{_escape(f)}/" if f else "/*" for f in folders) + sorted(f"/{_escape(p)}" for p in singles)
    return out + sorted(f"!/{_escape(p)}" for p in leave_out)


def _folders(path: str) -> list[str]:
    """'' and every folder above ``path``, outermost first: 'a/b/c' -> ['', 'a', 'a/b']."""
    out, at = [""], path.find("/")
    while at != -1:
        out.append(path[:at])
        at = path.find("/", at + 1)
    return out


def _escape(path: str) -> str:
    return _PATTERN_SPECIAL.sub(r"\\\1", path)
