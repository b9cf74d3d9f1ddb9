"""Reading ``.gitignore`` / ``.gitingestignore`` files: only inside the checkout, bounded, never failing the repo.

The patterns are those of gitingest's ``_parse_ignore_file`` (lines stripped, comments and blanks skipped, a leading
``!`` kept as a negation, leading ``/`` removed, the file's folder prefixed) with three deliberate differences, each
reported as a warning:

* a file that is not a regular file inside the checkout (a symlink resolving outside it, a FIFO) is not read;
* only the first :data:`MAX_IGNORE_BYTES` bytes are read (up to the last complete line);
* a file that is not UTF-8 is decoded as Latin-1 (stock gitingest fails the whole repository).
"""

from __future__ import annotations

import os
import stat
from pathlib import PurePosixPath

IGNORE_FILES = (".gitignore", ".gitingestignore")
MAX_IGNORE_BYTES = 1 << 20


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _read_bounded(path: str) -> tuple[bytes, bool]:
    """At most ``MAX_IGNORE_BYTES`` bytes of a regular file (never following a symlink); True when cut."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path}: not a regular file")
        parts: list[bytes] = []
        left = MAX_IGNORE_BYTES + 1
        while left > 0:
            block = os.read(fd, min(left, 1 << 16))
            if not block:
                break
            parts.append(block)
            left -= len(block)
    finally:
        os.close(fd)
    data = b"".join(parts)
    if len(data) > MAX_IGNORE_BYTES:
        data = data[:MAX_IGNORE_BYTES]
        return data[: data.rfind(b"\n") + 1], True
    return data, False


def _target(root: str, rel_file: str, warnings: list[str]) -> str | None:
    """The path to read for the ignore file ``rel_file``, or None (with a warning when that hides something)."""
    path = f"{root}/{rel_file}"
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    if stat.S_ISLNK(mode):
        real = os.path.realpath(path)
        if not _inside(real, root):
            warnings.append(f"{rel_file}: a symlink to outside the checkout, not read")
            return None
        try:
            mode = os.stat(real).st_mode
        except OSError:
            return None
        path = real
    if not stat.S_ISREG(mode):
        return None  # what gitingest's is_file() skips too (a dangling link, a folder, a FIFO)
    return path


def parse_ignore_file(root: str, rel_dir: str, name: str, warnings: list[str]) -> set[str]:
    """gitingest's ``_parse_ignore_file`` for ``<root>/<rel_dir>/<name>``, read safely (see the module docstring)."""
    rel_file = f"{rel_dir}/{name}" if rel_dir else name
    path = _target(root, rel_file, warnings)
    if path is None:
        return set()
    try:
        data, cut = _read_bounded(path)
    except OSError:
        return set()
    if cut:
        warnings.append(f"{rel_file}: larger than {MAX_IGNORE_BYTES} bytes, only its first lines read")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        warnings.append(f"{rel_file}: not UTF-8 (byte 0x{data[exc.start]:02x} at {exc.start}), read as Latin-1")
        text = data.decode("latin-1")
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # text mode's universal newlines
    base = PurePosixPath(rel_dir) if rel_dir else PurePosixPath()
    patterns: set[str] = set()
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        if negated:
            line = line[1:]
        if line.startswith("/"):
            line = line.lstrip("/")
        body = (base / line).as_posix()
        patterns.add(f"!{body}" if negated else body)
    return patterns
