"""The digest's text around gitingest's output: our header, and the cut at ``ingest.max_summary_bytes``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from xgov_digests.digest.version import FORMAT_VERSION, GITINGEST_VERSION  # noqa: F401 - re-exported


@dataclass(frozen=True)
class Header:
    """What we write above gitingest's output."""

    owner: str
    name: str
    url: str
    commit: str
    pushed_at: str | None


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

    The notice does not depend on ``len(data)``: :func:`assemble` stops reading once it is past the cap."""
    if len(data) <= cap:
        return data, False
    notice = _notice(cap)
    keep = data[: cap - len(notice)].decode("utf-8", "ignore").encode("utf-8")
    return keep + notice, True


def assemble(pieces: Iterable[str], strip: str, cap: int) -> tuple[bytes, bool]:
    """``truncate("".join(pieces).replace(strip, "").encode("utf-8", "replace"), cap)``, taking pieces only until
    the text is past the cap (a character is at least one byte, so the cut is then known).

    ``strip`` is removed piece by piece, after which the text's length is counted: counting before removing would
    stop early when removing brings the text back under the cap. Removing piece by piece equals removing from the
    whole text when no occurrence of ``strip`` spans two pieces: callers pass pieces that each end with a newline
    and a ``strip`` without one; with a newline in ``strip`` every piece is taken."""
    stream = "\n" not in strip
    out: list[str] = []
    chars = 0
    for piece in pieces:
        if stream:
            if strip:
                piece = piece.replace(strip, "")
            out.append(piece)
            chars += len(piece)
            if chars > cap:
                break
        else:
            out.append(piece)
    text = "".join(out)
    if not stream:
        text = text.replace(strip, "")
    return truncate(text.encode("utf-8", "replace"), cap)
