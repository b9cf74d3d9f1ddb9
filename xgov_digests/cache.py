"""The repo-level digest cache: a digest is reused while its repo's ``pushedAt`` and the digest settings hold.

Entries live under an fsspec URL (a local folder, or ``s3://bucket/prefix`` on the DVC remote's endpoint), one
object each: a JSON line (checksum, size, commit, files, truncated) followed by the digest bytes. A corrupt or
truncated entry is a miss, never an output.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from xgov_digests.digest import FORMAT_VERSION, GITINGEST_VERSION
from xgov_digests.files import resolve_location, write_atomic
from xgov_digests.params import IngestParams
from xgov_digests.repo import Repo

log = logging.getLogger(__name__)
ENTRY_VERSION = 1


@dataclass(frozen=True)
class Entry:
    data: bytes
    commit: str
    files: int
    truncated: bool
    walk_limit: str | None = None
    warnings: str | None = None


def fingerprint(settings: IngestParams) -> str:
    """Everything besides the repo that shapes a digest."""
    parts = {
        "max_file_size": settings.max_file_size,
        "max_summary_bytes": settings.max_summary_bytes,
        "max_files": settings.max_files,
        "max_total_bytes": settings.max_total_bytes,
        "format": FORMAT_VERSION,
        "gitingest": GITINGEST_VERSION,
    }
    return json.dumps(parts, sort_keys=True)


def cache_key(repo: Repo, fp: str) -> str:
    """sha256 over the normalised URL, the header's fields (URL as written, owner, name), pushedAt, fingerprint."""
    material = json.dumps([repo.key, repo.url, repo.owner, repo.name, repo.pushed_at, fp])
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def encode_entry(entry: Entry) -> bytes:
    head = {
        "v": ENTRY_VERSION,
        "sha256": hashlib.sha256(entry.data).hexdigest(),
        "size": len(entry.data),
        "commit": entry.commit,
        "files": entry.files,
        "truncated": entry.truncated,
        "walk_limit": entry.walk_limit,
        "warnings": entry.warnings,
    }
    return json.dumps(head, sort_keys=True).encode() + b"\n" + entry.data


def decode_entry(blob: bytes) -> Entry:
    """Parse and verify an entry; raises ValueError when it is corrupt or truncated."""
    head_line, sep, data = blob.partition(b"\n")
    if not sep:
        raise ValueError("no header line")
    head = json.loads(head_line)
    if head.get("v") != ENTRY_VERSION:
        raise ValueError(f"entry version {head.get('v')}")
    if len(data) != head["size"] or hashlib.sha256(data).hexdigest() != head["sha256"]:
        raise ValueError("checksum mismatch")
    return Entry(
        data, head["commit"], int(head["files"]), bool(head["truncated"]), head.get("walk_limit"), head.get("warnings")
    )


class DigestCache:
    """Get and put digests by repo; every failure of the cache itself is a logged miss, never a failed repo."""

    def __init__(self, url: str, fp: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self.fp = fp
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **(storage_options or {}))
        self.local = isinstance(self.fs, LocalFileSystem)

    def path(self, repo: Repo) -> str:
        key = cache_key(repo, self.fp)
        return f"{self.root}/{key[:2]}/{key}.digest"

    def get(self, repo: Repo) -> Entry | None:
        if repo.pushed_at is None:  # unknown push time: the repo may have changed
            return None
        path = self.path(repo)
        try:
            blob = self.fs.cat_file(path)
        except FileNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001 - a cache outage degrades to cloning
            log.warning("digest cache read failed", extra={"url": repo.key, "error": f"{type(exc).__name__}: {exc}"})
            return None
        try:
            return decode_entry(blob)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning(
                "corrupt digest cache entry: re-cloning", extra={"url": repo.key, "entry": path, "error": str(exc)}
            )
            return None

    def put(self, repo: Repo, entry: Entry) -> None:
        if repo.pushed_at is None:
            return
        path = self.path(repo)
        blob = encode_entry(entry)
        try:
            if self.local:
                write_atomic(Path(path), blob)  # temp file + rename: concurrent writers of one key are harmless
            else:
                self.fs.pipe_file(path, blob)  # one PUT: object stores replace whole objects atomically
        except Exception as exc:  # noqa: BLE001
            log.warning("digest cache write failed", extra={"url": repo.key, "error": f"{type(exc).__name__}: {exc}"})


def open_cache(settings: IngestParams) -> DigestCache | None:
    """The cache at ``ingest.cache`` ('' disables it); ``s3://`` uses the DVC remote 'r2' endpoint and credentials."""
    url = resolve_location(settings.cache)  # relative: against the project root, not a temporary experiment's copy
    if not url:
        return None
    options: dict[str, Any] = {}
    if url.startswith("s3://"):
        from xgov_digests.s3 import storage_options

        options = storage_options("r2")
    return DigestCache(url, fingerprint(settings), options)
