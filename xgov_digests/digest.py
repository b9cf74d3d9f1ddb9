"""Digest formatting: our header, then gitingest's tree and file contents for a local checkout.

The body is byte-identical to stock gitingest's ``tree + "\\n" + content`` for the same folder and
``max_file_size`` (``gitingest.ingest_async(folder, max_file_size=N)`` with its token count left out), but it is
built by a single-pass reimplementation of gitingest 0.3.1's walk instead of gitingest's own ``_process_node``:

* gitingest compiles a ``PathSpec`` of ~140 patterns for every path it visits (plus one DeprecationWarning per
  pattern), which is ~95% of its run time. Here the patterns are compiled once per checkout, with the same
  pattern classes and the same pattern order (a set built by the same operations, so negations resolve alike),
  and matched per path segment: a literal or ``*.ext`` pattern matches a path exactly when it matches one of the
  path's segments, so those become a dictionary lookup and a ``str.endswith``; every other pattern keeps its own
  regular expression on the whole path, and a path containing a newline is matched pattern by pattern, exactly
  as pathspec does.
* the ``.gitignore`` / ``.gitingestignore`` files are found in ``Path.rglob``'s order by the same directory scan
  that the walk then reuses, and parsed by gitingest's own ``_parse_ignore_file``.
* a file is read once (gitingest opens it twice and stats it twice); its text is decoded and newline-translated
  exactly as ``FileSystemNode.content`` does, falling back to gitingest's own code for anything unusual
  (notebooks, undecodable text, encodings other than UTF-8).
* :func:`make_digest` stops reading files once the digest is over ``max_summary_bytes``: the files after the cut
  are never opened, so memory stays at about the cap whatever the repository's size.

What is reused from gitingest as is: the pattern compiler (pathspec's gitignore patterns), the default ignore
patterns, ``_parse_ignore_file``, the notebook converter, the encoding probe and the traversal limits
(``MAX_FILES``, ``MAX_TOTAL_SIZE_BYTES``, ``MAX_DIRECTORY_DEPTH``, read from ``gitingest.ingestion`` at call time).
``tests/test_digest_fast.py`` compares the result with stock gitingest byte for byte on varied trees.
"""

from __future__ import annotations

import codecs
import functools
import locale
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath

import gitingest.ingestion as _gi_ingestion
from gitingest.schemas.filesystem import SEPARATOR
from gitingest.utils.file_utils import _decodes, _get_preferred_encodings
from gitingest.utils.ignore_patterns import DEFAULT_IGNORE_PATTERNS, _parse_ignore_file
from gitingest.utils.notebook import process_notebook

try:  # pathspec >= 1.0: the non-deprecated class that gitingest's 'gitwildmatch' patterns subclass
    from pathspec.patterns.gitignore.spec import GitIgnoreSpecPattern as _Pattern
except ImportError:  # pragma: no cover - pathspec < 1.0 (no deprecation warnings there)
    from pathspec.patterns.gitwildmatch import GitWildMatchPattern as _Pattern

# Bump when anything we write changes shape: it is part of the digest cache's fingerprint.
# 2: the truncation notice no longer carries the full length (digests stop reading at the cap).
FORMAT_VERSION = 2
GITINGEST_VERSION = metadata.version("gitingest")

_IGNORE_FILES = (".gitignore", ".gitingestignore")
_CHUNK_SIZE = 1024  # gitingest's binary sniffing window (gitingest.utils.file_utils._CHUNK_SIZE)
_READ_WHOLE = 64 * 1024  # smaller files are read in one go; larger ones chunk first (binaries stop there)


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
    """gitingest picks a file's encoding from the locale (re-read from the environment on every file): pin it so
    digests do not depend on the caller's. Done once, when this module is imported, before any repo thread starts:
    changing the environment while other threads copy it (git_env) would race."""
    if os.environ.get("LC_ALL") != "C.UTF-8":
        os.environ["LC_ALL"] = "C.UTF-8"
        locale.setlocale(locale.LC_ALL, "C.UTF-8")


_pin_encoding()


# --- ignore patterns -------------------------------------------------------------------------------------------

_SEG_PREFIX = "^(?:.+/)?"  # pathspec: "at the start of the path or right after any '/'"
_SEG_END_ANY = "(?:(?P<ps_d>/)|$)"  # the segment is a file or a directory
_SEG_END_DIR = "(?P<ps_d>/)"  # a directory only (a trailing '/' in the pattern)
# One token of a pattern segment: an escaped ASCII punctuation character, a plain character, or a "*" / "?" glob.
_SEG_TOKEN = re.compile(r"\\([ -.:-@\[-`{-~])|([^\\\[\]().*+?{}|^$/\n])|(\[\^/\]\*)|(\[\^/\])")


def _segment_form(body: str) -> tuple[str, str] | None:
    """``("literal", text)`` or ``("suffix", text)`` when the regex ``body`` is a plain segment name or
    ``*`` + a plain name; None for anything else (kept as a whole-path regex)."""
    pos, out, star_first = 0, [], False
    while pos < len(body):
        m = _SEG_TOKEN.match(body, pos)
        if m is None:
            return None
        if m.group(3) is not None:
            if pos != 0:
                return None
            star_first = True
        elif m.group(4) is not None:
            return None
        else:
            out.append(m.group(1) or m.group(2))
        pos = m.end()
    text = "".join(out)
    if not text:
        return None
    return ("suffix", text) if star_first else ("literal", text)


@functools.lru_cache(maxsize=8192)
def _compile(line: str) -> tuple[bool | None, re.Pattern[str] | None, tuple[str, str] | None, bool]:
    """One pattern line: (include, regex, segment form, directory-only). Cached: the ~130 default patterns are
    the same for every checkout, and a compiled pattern is immutable."""
    pattern = _Pattern(line)
    regex = pattern.regex
    form, dir_only = None, False
    if regex is not None and regex.flags == re.UNICODE and regex.pattern.startswith(_SEG_PREFIX):
        text = regex.pattern
        if text.endswith(_SEG_END_ANY):
            form = _segment_form(text[len(_SEG_PREFIX) : -len(_SEG_END_ANY)])
        elif text.endswith(_SEG_END_DIR):
            form, dir_only = _segment_form(text[len(_SEG_PREFIX) : -len(_SEG_END_DIR)]), True
    return pattern.include, regex, form, dir_only


class IgnoreSpec:
    """gitingest's ``PathSpec.from_lines("gitwildmatch", patterns).match_file(path)``, compiled once.

    pathspec lets the last matching pattern decide (a ``!negation`` re-includes). Every pattern gets a bit equal to
    its position, a path's matching patterns form a bit mask, and the highest bit decides.
    """

    def __init__(self, lines: Iterable[str]) -> None:
        compiled = [_compile(line) for line in lines if line]  # what PathSpec.from_lines builds, in its order
        self._includes: list[bool | None] = [c[0] for c in compiled]
        self._all = [(1 << i, c[1]) for i, c in enumerate(compiled) if c[0] is not None and c[1] is not None]
        self._general: list[tuple[int, re.Pattern[str]]] = []
        self._lit_any: dict[str, int] = {}  # segment name -> bits of file-or-directory patterns
        self._lit_dir: dict[str, int] = {}  # segment name -> bits of directory-only patterns
        self._suffixes: list[tuple[str, int, bool]] = []  # (suffix, bit, directory-only)
        for i, (include, regex, form, dir_only) in enumerate(compiled):
            if include is None or regex is None:
                continue
            bit = 1 << i
            if form is None:
                self._general.append((bit, regex))
            elif form[0] == "literal":
                table = self._lit_dir if dir_only else self._lit_any
                table[form[1]] = table.get(form[1], 0) | bit
            else:
                self._suffixes.append((form[1], bit, dir_only))
        self._suffix_tuple = tuple(s for s, _, _ in self._suffixes)
        self._segments: dict[str, tuple[int, int]] = {}

    def segment(self, name: str) -> tuple[int, int]:
        """(bits matching ``name`` as the last segment, bits matching it as a directory above the path)."""
        cached = self._segments.get(name)
        if cached is not None:
            return cached
        last = self._lit_any.get(name, 0)
        above = last | self._lit_dir.get(name, 0)
        if self._suffix_tuple and name.endswith(self._suffix_tuple):
            for suffix, bit, dir_only in self._suffixes:
                if name.endswith(suffix):
                    above |= bit
                    if not dir_only:
                        last |= bit
        self._segments[name] = result = (last, above)
        return result

    def excluded(self, rel: str, name: str, above: int) -> bool:
        """Does gitingest exclude ``rel`` (whose last segment is ``name``; ``above`` = its parents' bits)?"""
        if "\n" in rel:  # '.' in pathspec's prefix does not match a newline: match pattern by pattern
            mask = 0
            for bit, regex in self._all:
                if regex.search(rel) is not None:
                    mask |= bit
        else:
            mask = above | self.segment(name)[0]
            for bit, regex in self._general:
                if regex.search(rel) is not None:
                    mask |= bit
        return bool(mask) and bool(self._includes[mask.bit_length() - 1])


# --- the walk --------------------------------------------------------------------------------------------------

_DIR, _FILE, _SYMLINK = 0, 1, 2


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


def _is_file(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _exists(path: str) -> bool:
    try:
        os.stat(path)
    except (OSError, ValueError):
        return False
    return True


class _Scan:
    """One checkout: ignore patterns, the filtered tree, the files in output order."""

    def __init__(self, checkout: Path, max_file_size: int, limits: Limits) -> None:
        self.root_path = Path(str(checkout)).resolve()  # gitingest's parse_local_dir_path
        self.root = str(self.root_path)
        self.max_file_size = max_file_size
        self.max_files = limits.files or _gi_ingestion.MAX_FILES
        self.max_total = limits.total_bytes or _gi_ingestion.MAX_TOTAL_SIZE_BYTES
        self.listings: dict[str, list[os.DirEntry[str]]] = {}
        found: dict[str, list[str]] = {name: [] for name in _IGNORE_FILES}
        self._list_all("", found)
        patterns = DEFAULT_IGNORE_PATTERNS.copy()  # gitingest's process_patterns() ...
        for name in _IGNORE_FILES:  # ... then _apply_gitignores(): the same set operations, in the same order
            loaded: set[str] = set()
            for rel_dir in found[name]:
                path = self.root_path / rel_dir / name if rel_dir else self.root_path / name
                if _is_file(str(path)):
                    loaded.update(_parse_ignore_file(path, self.root_path))
            patterns.update(loaded)
        self.spec = IgnoreSpec(patterns)
        self.total_files = 0
        self.total_size = 0
        slug = self.root_path.name if str(checkout) == "." else str(checkout).strip("/")
        self.tree = _Node(_DIR, self.root_path.name or slug, ".")
        self._walk(self.tree, "", 0, 0)

    def _abs(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def _list_all(self, rel_dir: str, found: dict[str, list[str]]) -> None:
        """``Path.rglob``'s walk (pre-order, scandir order, symlinked directories not followed), remembering
        each listing for the ingest walk and where the ignore files are (rglob's ``exists()`` follows links)."""
        path = self._abs(rel_dir)
        try:
            with os.scandir(path) as it:
                entries = list(it)
        except PermissionError:
            for name in _IGNORE_FILES:
                if _exists(f"{path}/{name}"):
                    found[name].append(rel_dir)
            return
        self.listings[rel_dir] = entries
        for entry in entries:
            if entry.name in found and (not entry.is_symlink() or _exists(entry.path)):
                found[entry.name].append(rel_dir)
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                self._list_all(f"{rel_dir}/{entry.name}" if rel_dir else entry.name, found)

    def _walk(self, node: _Node, rel_dir: str, depth: int, above: int) -> None:
        """gitingest's ``_process_node``: same limits, same order, same skips."""
        if (
            depth > _gi_ingestion.MAX_DIRECTORY_DEPTH
            or self.total_files >= self.max_files
            or self.total_size >= self.max_total
        ):
            return
        entries = self.listings.get(rel_dir)
        if entries is None:  # unreadable in the first pass: let listing it raise as gitingest's iterdir would
            with os.scandir(self._abs(rel_dir)) as it:
                entries = list(it)
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
                    continue
                if self.total_size + size > self.max_total:
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
        encodings = _get_preferred_encodings()
        first = True
        for leaf in self.leaves():
            if not first:
                yield "\n"
            first = False
            if leaf.kind == _SYMLINK:
                yield f"{SEPARATOR}\nSYMLINK: {leaf.rel} -> {leaf.target}\n{SEPARATOR}\n\n\n"
            else:
                yield f"{SEPARATOR}\nFILE: {leaf.rel}\n{SEPARATOR}\n{self._content(leaf, encodings)}\n\n"

    def _content(self, leaf: _Node, encodings: list[str]) -> str:
        """``FileSystemNode.content``."""
        path = self._abs(leaf.rel)
        if leaf.name.endswith(".ipynb") and PurePosixPath(leaf.name).suffix == ".ipynb":
            try:
                return process_notebook(Path(path))
            except Exception as exc:  # noqa: BLE001 - gitingest turns any notebook error into text
                return f"Error processing notebook: {exc}"
        try:
            data = _read(path, leaf.size)
        except OSError:
            return "Error reading file"
        chunk = data[:_CHUNK_SIZE]
        if chunk == b"":
            return "[Empty file]"
        if not _decodes(chunk, "utf-8"):
            return "[Binary file]"
        good = next((enc for enc in encodings if _decodes(chunk, encoding=enc)), None)
        if good is None:
            return "Error: Unable to decode file with available encodings"
        if leaf.size > _READ_WHOLE:  # only the first chunk was read (binary sniffing): now read it all
            try:
                data = _read(path, None)
            except OSError:
                return _text_mode_read(path, good)
        if _is_utf8(good):
            try:
                text = data.decode(good)
            except UnicodeDecodeError:
                return _text_mode_read(path, good)  # gitingest's own read: the same error message
            if "\r" in text:  # text mode's universal newlines
                text = text.replace("\r\n", "\n").replace("\r", "\n")
            return text
        return _text_mode_read(path, good)


def _is_utf8(encoding: str) -> bool:
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


def _text_mode_read(path: str, encoding: str) -> str:
    """The end of ``FileSystemNode.content``, verbatim."""
    try:
        with Path(path).open(encoding=encoding) as fp:
            return fp.read()
    except (OSError, UnicodeDecodeError) as exc:
        return f"Error reading file with {encoding!r}: {exc}"


def _read(path: str, size: int | None) -> bytes:
    """The whole file when it is small (or ``size`` is None), else its first chunk (binary sniffing)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        if size is not None and size > _READ_WHOLE:
            return os.read(fd, _CHUNK_SIZE)
        parts = []
        want = (size if size is not None else _READ_WHOLE) + 1
        while True:
            block = os.read(fd, want)
            if not block:
                break
            parts.append(block)
            want = max(want, 65536)
        return b"".join(parts)
    finally:
        os.close(fd)


# --- public API --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """How much of a checkout is walked (``ingest.max_files``, ``ingest.max_total_bytes``); 0 = gitingest's own."""

    files: int = 0
    total_bytes: int = 0


def ingest_tree(checkout: Path, *, max_file_size: int, limits: Limits = Limits()) -> tuple[str, str, int]:
    """gitingest's ``(tree, content, files analysed)`` for a local folder, without token counting."""
    scan = _Scan(checkout, max_file_size, limits)
    return scan.tree_text(), "".join(scan.content_pieces()), scan.tree.file_count


def ignore_spec(checkout: Path) -> IgnoreSpec:
    """The patterns a digest of ``checkout`` applies: gitingest's defaults, then every ignore file found in it.

    Only the ignore files on disk count, so a checkout holding just those gives the spec of the full checkout."""
    return _Scan(checkout, 0, Limits()).spec


def render_header(h: Header, files: int) -> str:
    return (
        f"Repository: {h.owner}/{h.name}\n"
        f"URL: {h.url}\n"
        f"Commit: {h.commit}\n"
        f"Pushed at: {h.pushed_at or 'unknown'}\n"
        f"Files analyzed: {files}\n"
    )


def _notice(cap: int) -> bytes:
    return f"\n[truncated: digest cut at {cap} bytes by ingest.max_summary_bytes]\n".encode()


def truncate(data: bytes, cap: int) -> tuple[bytes, bool]:
    """Cut ``data`` to at most ``cap`` bytes on a UTF-8 boundary, ending with a one-line notice.

    The notice does not depend on ``len(data)``: :func:`make_digest` stops reading once it is past the cap."""
    if len(data) <= cap:
        return data, False
    notice = _notice(cap)
    keep = data[: cap - len(notice)].decode("utf-8", "ignore").encode("utf-8")
    return keep + notice, True


def make_digest(
    checkout: Path, header: Header, *, max_file_size: int, max_summary_bytes: int, limits: Limits = Limits()
) -> Digest:
    """The digest of ``checkout``: header, tree and contents, capped at ``max_summary_bytes``.

    Identical to ``truncate((header + "\\n" + tree + "\\n" + content).encode(), cap)``, but files after the cap
    are never read."""
    scan = _Scan(checkout, max_file_size, limits)
    files = scan.tree.file_count
    pieces = [render_header(header, files), "\n", scan.tree_text(), "\n"]
    chars = sum(map(len, pieces))
    for piece in scan.content_pieces():
        if chars > max_summary_bytes:  # a character is at least one byte: the cut is already behind us
            break
        pieces.append(piece)
        chars += len(piece)
    # gitingest's error texts (an unreadable notebook) can name the checkout's absolute, temporary path.
    text = "".join(pieces).replace(f"{scan.root}/", "")
    data, truncated = truncate(text.encode("utf-8", "replace"), max_summary_bytes)
    return Digest(data, files, truncated)
