"""A file's text as gitingest's ``FileSystemNode.content`` gives it, reading each file once."""

from __future__ import annotations

import codecs
import locale
import os
from pathlib import Path, PurePosixPath

from gitingest.utils.file_utils import _decodes, _get_preferred_encodings
from gitingest.utils.notebook import process_notebook

_CHUNK_SIZE = 1024  # gitingest's binary sniffing window (gitingest.utils.file_utils._CHUNK_SIZE)
_READ_WHOLE = 64 * 1024  # smaller files are read in one go; larger ones chunk first (binaries stop there)


def _pin_encoding() -> None:
    """gitingest picks a file's encoding from the locale (re-read from the environment on every file): pin it so
    digests do not depend on the caller's. Done once, when this module is imported, before any repo thread starts:
    changing the environment while other threads copy it (git_env) would race."""
    if os.environ.get("LC_ALL") != "C.UTF-8":
        os.environ["LC_ALL"] = "C.UTF-8"
        locale.setlocale(locale.LC_ALL, "C.UTF-8")


_pin_encoding()


def preferred_encodings() -> list[str]:
    return _get_preferred_encodings()


def file_text(path: str, name: str, size: int, encodings: list[str]) -> str:
    """``FileSystemNode.content`` of the file at ``path`` (last segment ``name``, ``size`` bytes when listed)."""
    if name.endswith(".ipynb") and PurePosixPath(name).suffix == ".ipynb":
        try:
            return process_notebook(Path(path))
        except Exception as exc:  # noqa: BLE001 - gitingest turns any notebook error into text
            return f"Error processing notebook: {exc}"
    try:
        data = _read(path, size)
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
    if size > _READ_WHOLE:  # only the first chunk was read (binary sniffing): now read it all
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
