"""Checking one feed entry: plain owner/name, a canonical URL that agrees with them, ``pushedAt`` in UTC.

Everything here is pure (no I/O): :func:`check_entry` turns one decoded JSON value into a :class:`Checked` entry or
raises :class:`EntryProblem` with a reason that is safe to log (a URL is shown only up to its host).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from xgov_digests.core.files import DVC_SPECIAL_NAMES
from xgov_digests.core.repo import Repo

# GitHub's own rules: a path component we can safely use as a folder or file name. A leading '.' is allowed
# (``.github`` repos are common) but '.' and '..' are not. ASCII only: no control character, space or '~'.
_NAME_RE = re.compile(r"(?!\.{1,2}\Z)[A-Za-z0-9_.][A-Za-z0-9._-]{0,99}", re.ASCII)
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(1, 10)}
_URL_RE = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#]*)(?P<path>[^?#]*)(?P<query>\?[^#]*)?(?P<fragment>#.*)?",
    re.ASCII | re.DOTALL,
)
_HOST_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*", re.ASCII)
_PUSHED_RE = re.compile(
    r"(?P<time>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.(?P<fraction>[0-9]{1,9}))?"
    r"(?P<zone>Z|[+-][0-9]{2}:?[0-9]{2})",
    re.ASCII,
)
MAX_URL = 2048
MAX_DEPTH = 32  # levels of nesting inside one entry (GitHub's records have 3)
MAX_INT_DIGITS = 100
EPOCH = datetime.min.replace(tzinfo=UTC)


class EntryProblem(ValueError):
    """Why one feed entry is dropped; the message is safe to log."""


class Unusable:
    """Stands in for a JSON value no standard JSON reader accepts (NaN, Infinity, an integer of 5,000 digits)."""

    def __init__(self, what: str) -> None:
        self.what = what


def parse_constant(text: str) -> Unusable:
    """``json.loads`` hook for NaN, Infinity and -Infinity."""
    return Unusable(f"{text} (not standard JSON)")


def parse_int(text: str) -> int | Unusable:
    """``json.loads`` hook: integers of more than ``MAX_INT_DIGITS`` digits are unusable, not an error."""
    digits = len(text.lstrip("-"))
    return Unusable(f"an integer of {digits} digits") if digits > MAX_INT_DIGITS else int(text)


def parse_float(text: str) -> float | Unusable:
    """``json.loads`` hook: a number too large for a float (``1e999``) would be written back as Infinity."""
    value = float(text)
    return value if value - value == 0 else Unusable(f"the number {text[:20]} (overflows to Infinity)")


def object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` hook: a key given twice makes its value unusable (JSON readers disagree on which one counts,
    so an entry could show one owner to one tool and another to the next)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        obj[twice] = Unusable(f"the key {twice[:40]!r} twice")
    return obj


def json_type(value: Any) -> str:
    """What a decoded JSON value is, in JSON's words ("a JSON object", "NaN (not standard JSON)", ...)."""
    if isinstance(value, Unusable):
        return value.what
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else f"a JSON {names.get(type(value), type(value).__name__)}"


@dataclass(frozen=True)
class Checked:
    """A usable entry: its repo, its record for the snapshot, its parsed push time and any non-fatal notes."""

    repo: Repo
    record: dict[str, Any]
    pushed: datetime = EPOCH
    notes: list[str] = field(default_factory=list)


def shown_url(url: str) -> str:
    """The URL up to its host, everything after replaced by ``…``: never a token, password, path or query."""
    match = _URL_RE.fullmatch(url) if url.isascii() else None
    if not match or len(match["scheme"]) > 16:
        return "…"
    host = match["authority"].rpartition("@")[2].partition(":")[0].lower()
    return f"{match['scheme'].lower()}://{host if _HOST_RE.fullmatch(host) else ''}/…"


def check_name(value: Any, field_name: str) -> str:
    """Return ``value`` if it is a usable owner/name, else raise :class:`EntryProblem`."""
    if not isinstance(value, str):
        raise EntryProblem(f"{field_name} is {type(value).__name__}, not a string")
    if not _NAME_RE.fullmatch(value):
        raise EntryProblem(
            f"{field_name} {value[:60]!r} is not a plain name (ASCII letters, digits, '.', '_', '-'; at most 100; "
            "no spaces or control characters)"
        )
    if value.lower().split(".")[0] in _WINDOWS_RESERVED or value.endswith("."):
        raise EntryProblem(f"{field_name} {value!r} is a reserved or unsafe file name")
    if value.lower() in DVC_SPECIAL_NAMES:
        raise EntryProblem(f"{field_name} {value!r} is a name DVC or git treat specially (its digest would be lost)")
    if field_name == "name" and value.lower().endswith(".git"):
        raise EntryProblem(f"name {value!r} ends in '.git', which GitHub allows in no repository name")
    return value


def canonical_url(raw: Any, owner: str, name: str) -> str:
    """The repo's URL rebuilt from its parts: ``https://<host>/<owner>/<name>`` (or ``file:///<path>`` for local
    repos). Anything else in the URL, or a path that disagrees with owner/name, raises :class:`EntryProblem`."""
    if not isinstance(raw, str):
        raise EntryProblem(f"url is {type(raw).__name__}, not a string")
    shown = shown_url(raw)
    if not raw.isascii() or not raw.isprintable() or any(c.isspace() for c in raw):
        raise EntryProblem(f"url {shown} has whitespace, control or non-ASCII characters")
    if len(raw) > MAX_URL:
        raise EntryProblem(f"url {shown} is longer than {MAX_URL} characters")
    match = _URL_RE.fullmatch(raw)
    if not match:
        raise EntryProblem(f"url {shown} is not an absolute URL (https://<host>/<owner>/<name>)")
    scheme, authority, path = match["scheme"].lower(), match["authority"], match["path"]
    problem = (
        (scheme not in ("https", "file"), f"has scheme {scheme[:16]!r}: only https:// URLs are cloned"),
        ("@" in authority, "carries userinfo (user:token@)"),
        (match["query"] is not None, "has a query string"),
        (match["fragment"] is not None, "has a fragment"),
        ("%" in raw, "has percent escapes"),
        (":" in authority, "has a port"),
    )
    for bad, reason in problem:
        if bad:
            raise EntryProblem(f"url {shown} {reason}")
    host = authority.lower()
    if scheme == "https" and not _HOST_RE.fullmatch(host):
        raise EntryProblem(f"url {shown} has no valid host name")
    if scheme == "file" and host:
        raise EntryProblem(f"url {shown} names a host; file:// URLs must be file:///<path>")
    segments = path.split("/")
    if segments[-1] == "" and len(segments) > 2:
        segments.pop()  # one trailing '/'
    if segments[0] != "" or "" in segments[1:]:
        raise EntryProblem(f"url {shown} has an empty path segment")
    segments = segments[1:]
    if any(seg in (".", "..") for seg in segments):
        raise EntryProblem(f"url {shown} has '.' or '..' path segments")
    if scheme == "https" and len(segments) != 2:
        raise EntryProblem(f"url {shown} is not https://<host>/<owner>/<name>")
    expected = [owner, name] if scheme == "https" else [name]
    got = segments[-len(expected) :]
    got[-1] = got[-1] if got[-1].lower() == name.lower() else got[-1].removesuffix(".git")
    if [s.lower() for s in got] != [s.lower() for s in expected]:
        what = "owner/name" if scheme == "https" else "name"
        raise EntryProblem(f"url {shown} does not point to {'/'.join(expected)!r}: its path disagrees with {what}")
    if scheme == "https":
        return f"https://{host}/{owner}/{name}"
    return "file:///" + "/".join(segments)


def parse_pushed_at(value: Any) -> tuple[str | None, datetime, str | None]:
    """``pushedAt`` as (kept value, parsed time for ordering, note).

    An ISO-8601 date and time with any UTC offset (``Z``, ``+01:00``, ``-0530``) and up to 9 digits of fraction is
    converted to UTC and written ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` (GitHub's own form; the fraction to the
    microsecond, trailing zeros dropped, only when there is one); anything else becomes null with a note."""
    if value is None:
        return None, EPOCH, None
    match = _PUSHED_RE.fullmatch(value) if isinstance(value, str) else None
    if match:
        zone = match["zone"]
        zone = "+00:00" if zone == "Z" else zone if len(zone) == 6 else f"{zone[:3]}:{zone[3:]}"
        fraction = (match["fraction"] or "")[:6].ljust(6, "0")
        try:
            parsed = datetime.fromisoformat(f"{match['time']}.{fraction}{zone}").astimezone(UTC)
        except (ValueError, OverflowError):
            pass
        else:
            micro = f".{parsed.microsecond:06d}".rstrip("0").rstrip(".")
            return f"{parsed:%Y-%m-%dT%H:%M:%S}{micro}Z", parsed, None
    shown = repr(value[:40]) if isinstance(value, str) else type(value).__name__
    return (
        None,
        EPOCH,
        (
            f"pushedAt {shown} is not an ISO-8601 date and time with a UTC offset (e.g. 2024-01-31T12:00:00Z): "
            "set to null"
        ),
    )


def clone_problem(url: str, allowed_hosts: tuple[str, ...], allow_file_urls: bool) -> str | None:
    """Why a shard would refuse to clone a canonical URL (``ingest.allowed_hosts`` / ``ingest.allow_file_urls``), or
    None. The same rule as the shard's check, on the URLs :func:`canonical_url` builds."""
    if url.startswith("file:///"):
        return None if allow_file_urls else "file:// URLs are not allowed (ingest.allow_file_urls is false)"
    host = url.removeprefix("https://").partition("/")[0]
    if host not in {h.lower() for h in allowed_hosts}:
        return f"host {host!r} is not in ingest.allowed_hosts"
    return None


def _sanity(entry: dict[str, Any]) -> None:
    """Every value of the entry can be written back as standard UTF-8 JSON, at a bounded depth."""
    stack: list[tuple[Any, int]] = [(entry, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, Unusable):
            raise EntryProblem(f"entry holds {value.what}")
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise EntryProblem("entry holds a string with a lone surrogate (not valid Unicode)") from None
        elif isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise EntryProblem(f"entry is nested more than {MAX_DEPTH} levels deep")
            items = list(value.items()) if isinstance(value, dict) else [(None, v) for v in value]
            for key, item in items:
                if key is not None:
                    stack.append((key, depth))
                stack.append((item, depth + 1))


def check_entry(entry: Any) -> Checked:
    """Turn one feed entry into a :class:`Checked` entry, or raise :class:`EntryProblem` saying why not."""
    if not isinstance(entry, dict):
        raise EntryProblem(f"entry is {json_type(entry)}, not an object")
    _sanity(entry)
    owner = check_name(entry.get("owner"), "owner")
    name = check_name(entry.get("name"), "name")
    url = canonical_url(entry.get("url"), owner, name)
    pushed_at, pushed, note = parse_pushed_at(entry.get("pushedAt"))
    record = dict(entry, url=url, pushedAt=pushed_at)
    return Checked(Repo(url, owner, name, pushed_at), record, pushed, [note] if note else [])
