"""The repository feed: download it, validate each entry, normalise into a sorted snapshot."""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from xgov_digests.logs import redact

log = logging.getLogger(__name__)

# GitHub's own rules: a path component we can safely use as a folder or file name. A leading '.' is allowed
# (``.github`` repos are common) but '.' and '..' are not.
_NAME_RE = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9_.][A-Za-z0-9._-]{0,99}$")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(1, 10)}
RETRY_STATUS = {429} | set(range(500, 600))


class FeedError(RuntimeError):
    """The feed could not be fetched or holds no usable repository."""


@dataclass(frozen=True)
class Repo:
    """One repository of the snapshot: what a shard needs to clone and label it."""

    url: str
    owner: str
    name: str
    pushed_at: str | None

    @property
    def key(self) -> str:
        """The normalised URL: identity for dedupe, sorting and caching."""
        return normalise_url(self.url)

    def manifest_entry(self) -> dict[str, Any]:
        return {"url": self.url, "owner": self.owner, "name": self.name, "pushedAt": self.pushed_at}


def normalise_url(url: str) -> str:
    """Lower-case, without trailing ``/`` or ``.git``: two spellings of one repo compare equal."""
    u = url.strip().lower()
    while True:
        stripped = u.rstrip("/").removesuffix(".git")
        if stripped == u:
            return u
        u = stripped


def download(source: str, *, timeout: float = 60.0, retries: int = 4, backoff: float = 1.0) -> bytes:
    """Return the feed's bytes from an http(s) URL or a local path.

    Connection errors, timeouts, 429 and 5xx are retried with exponential backoff; other 4xx fail at once.
    """
    if not source.startswith(("http://", "https://")):
        path = Path(source.removeprefix("file://"))
        try:
            return path.read_bytes()
        except OSError as exc:
            raise FeedError(
                f"cannot read feed file {path}: {exc.strerror or exc}; check feed.url in params.yaml"
            ) from exc
    last = ""
    for attempt in range(retries + 1):
        if attempt:
            delay = backoff * 2 ** (attempt - 1)
            log.warning("retrying feed download", extra={"attempt": attempt, "delay_s": delay, "reason": last})
            time.sleep(delay)
        try:
            resp = requests.get(source, timeout=timeout)
        except requests.RequestException as exc:
            last = f"{type(exc).__name__}: {exc}"
            continue
        if resp.status_code == 200:
            return resp.content
        if resp.status_code not in RETRY_STATUS:
            raise FeedError(
                f"feed {source} answered HTTP {resp.status_code}; check feed.url in params.yaml (not retried)"
            )
        last = f"HTTP {resp.status_code}"
    raise FeedError(f"feed {source} failed after {retries + 1} attempts: {last}")


def _check_name(value: Any, field: str) -> str | None:
    """Return why ``value`` is not a usable owner/name, or None if it is."""
    if not isinstance(value, str):
        return f"{field} is {type(value).__name__}, not a string"
    if not _NAME_RE.match(value):
        return f"{field} {value[:60]!r} is not a plain name (letters, digits, '.', '_', '-'; at most 100)"
    if value.lower().split(".")[0] in _WINDOWS_RESERVED or value.endswith("."):
        return f"{field} {value!r} is a reserved or unsafe file name"
    return None


def _check_url(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"url is {type(value).__name__}, not a string"
    parts = urlsplit(value.strip())
    if not parts.scheme or not (parts.netloc or parts.scheme == "file") or not parts.path.strip("/"):
        return f"url {redact(value)[:80]!r} is not an absolute URL with a path"
    return None


def validate_entry(entry: Any) -> tuple[Repo | None, str | None]:
    """Turn one feed entry into a :class:`Repo`, or say why it is unusable."""
    if not isinstance(entry, dict):
        return None, f"entry is {type(entry).__name__}, not an object"
    for problem in (
        _check_url(entry.get("url")),
        _check_name(entry.get("owner"), "owner"),
        _check_name(entry.get("name"), "name"),
    ):
        if problem:
            return None, problem
    pushed = entry.get("pushedAt")
    # A token in a URL never reaches the snapshot, a manifest or a log; the shard then rejects the URL.
    url = redact(entry["url"].strip())
    return Repo(url, entry["owner"], entry["name"], pushed if isinstance(pushed, str) else None), None


@dataclass
class Snapshot:
    """The normalised feed: valid, deduplicated, sorted, limited."""

    repos: list[Repo]
    records: list[dict[str, Any]]  # the full metadata of each repo, same order
    dropped: int
    duplicates: int


def parse_feed(body: bytes, *, limit: int = 0, source: str = "feed") -> Snapshot:
    """Validate and normalise the feed body. Raises :class:`FeedError` when nothing usable is left."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FeedError(f"{source} is not valid JSON ({exc}); the previous snapshot is untouched") from exc
    if not isinstance(data, list):
        raise FeedError(f"{source} must be a JSON list of repositories, got a JSON {type(data).__name__}")
    best: dict[str, tuple[Repo, dict[str, Any]]] = {}
    dropped = duplicates = 0
    for index, entry in enumerate(data):
        repo, problem = validate_entry(entry)
        if repo is None:
            dropped += 1
            log.warning("dropping feed entry", extra={"index": index, "reason": problem})
            continue
        record = dict(entry, url=repo.url)
        key = repo.key
        if key in best:
            duplicates += 1
            # Keep one deterministic winner whatever the feed order: the latest push, then the smallest record.
            rank = (repo.pushed_at or "", json.dumps(record, sort_keys=True, default=str))
            old_repo, old_record = best[key]
            old_rank = (old_repo.pushed_at or "", json.dumps(old_record, sort_keys=True, default=str))
            if rank <= old_rank:
                continue
        best[key] = (repo, record)
    if not best:
        raise FeedError(f"{source} holds no usable repository ({len(data)} entries, {dropped} dropped)")
    ordered = []
    paths: dict[tuple[str, str], str] = {}
    for key in sorted(best):
        repo = best[key][0]
        # owner/name become a digest's path: two repos that differ only in case would collide on some disks.
        path = (repo.owner.lower(), repo.name.lower())
        if path in paths:
            dropped += 1
            log.warning("dropping feed entry", extra={"url": key, "reason": f"{repo.owner}/{repo.name} is already "
                                                      f"used (ignoring case) by {paths[path]}"})  # fmt: skip
            continue
        paths[path] = key
        ordered.append(best[key])
    if limit:
        ordered = ordered[:limit]
    if dropped or duplicates:
        log.warning("feed normalised", extra={"dropped": dropped, "duplicates": duplicates, "kept": len(ordered)})
    return Snapshot([r for r, _ in ordered], [rec for _, rec in ordered], dropped, duplicates)


def load_snapshot(source: str, *, limit: int = 0, timeout: float = 60.0, retries: int = 4) -> Snapshot:
    """Download and parse in one step (the shard CLI's ``--feed``)."""
    return parse_feed(download(source, timeout=timeout, retries=retries), limit=limit, source=source)
