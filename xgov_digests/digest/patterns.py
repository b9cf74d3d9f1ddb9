"""gitingest's ignore-pattern matching (pathspec's gitignore patterns), compiled once per checkout."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

try:  # pathspec >= 1.0: the non-deprecated class that gitingest's 'gitwildmatch' patterns subclass
    from pathspec.patterns.gitignore.spec import GitIgnoreSpecPattern as _Pattern
except ImportError:  # pragma: no cover - pathspec < 1.0 (no deprecation warnings there)
    from pathspec.patterns.gitwildmatch import GitWildMatchPattern as _Pattern

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
