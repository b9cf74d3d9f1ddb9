"""The repo-level digest cache: a digest is reused while its repo's ``pushedAt`` and the digest settings hold.

Entries live under an fsspec URL (a local folder) or ``s3://bucket/prefix`` on the DVC remote 'r2' endpoint, one
object each: a JSON header line (checksum, size, commit, files, truncated, and the entry's identity: URL, owner,
name, fingerprint) followed by the digest bytes. A corrupt, truncated or misplaced entry is a miss, never an output;
the fresh digest then replaces it. Every S3 request has a deadline (``storage.timeout``): an endpoint that does not
answer makes the cache unavailable for the rest of the run (one warning; repos are cloned as if missed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from xgov_digests.core.files import resolve_location, write_atomic
from xgov_digests.core.params import IngestParams
from xgov_digests.core.repo import Repo
from xgov_digests.digest.version import FORMAT_VERSION, GITINGEST_VERSION

log = logging.getLogger(__name__)
ENTRY_VERSION = 2
# S3 errors that concern the whole cache, not one entry: the cache is unavailable for the rest of the run.
BUCKET_ERRORS = ("NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403")
T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    data: bytes
    commit: str
    files: int
    truncated: bool
    walk_limit: str | None = None
    warnings: str | None = None
    tokens: dict[str, int] = field(default_factory=dict)  # encoding -> the digest's token count (a hit skips counting)


class CacheUnavailable(RuntimeError):
    """The cache's endpoint did not answer within the deadline, or the shard is stopping."""


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


def encode_entry(entry: Entry, repo: Repo, fp: str) -> bytes:
    head = {
        "v": ENTRY_VERSION,
        "sha256": hashlib.sha256(entry.data).hexdigest(),
        "size": len(entry.data),
        "commit": entry.commit,
        "files": entry.files,
        "truncated": entry.truncated,
        "walk_limit": entry.walk_limit,
        "warnings": entry.warnings,
        "url": repo.url,
        "owner": repo.owner,
        "name": repo.name,
        "fingerprint": fp,
    }
    if entry.tokens:  # optional: an entry without it (older) is still a hit, its tokens counted again
        head["tokens"] = entry.tokens
    return json.dumps(head, sort_keys=True).encode() + b"\n" + entry.data


def _field(head: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = head.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"header field {name!r} is missing or not {getattr(kind, '__name__', kind)}")
    return value


def decode_entry(blob: bytes, repo: Repo | None = None, fp: str | None = None) -> Entry:
    """Parse and verify an entry (and, given ``repo`` and ``fp``, that it belongs to them); raises ValueError when
    it is corrupt, truncated, of another shape or another repo's."""
    head_line, sep, data = blob.partition(b"\n")
    if not sep:
        raise ValueError("no header line")
    try:
        head = json.loads(head_line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"header is not JSON: {exc}") from None
    if not isinstance(head, dict):
        raise ValueError(f"header is a JSON {type(head).__name__}, not an object")
    if head.get("v") != ENTRY_VERSION:
        raise ValueError(f"entry version {head.get('v')!r}")
    if len(data) != _field(head, "size", int) or hashlib.sha256(data).hexdigest() != _field(head, "sha256", str):
        raise ValueError("checksum mismatch")
    if repo is not None:
        found = (head.get("url"), head.get("owner"), head.get("name"))
        if found != (repo.url, repo.owner, repo.name):
            raise ValueError(f"entry belongs to {found[1]}/{found[2]} ({found[0]}), not {repo.owner}/{repo.name}")
    if fp is not None and head.get("fingerprint") != fp:
        raise ValueError("entry was made with other digest settings (fingerprint mismatch)")
    walk_limit, warnings = head.get("walk_limit"), head.get("warnings")
    if not all(v is None or isinstance(v, str) for v in (walk_limit, warnings)):
        raise ValueError("header fields 'walk_limit' and 'warnings' must be strings or null")
    tokens = head.get("tokens") or {}
    if not isinstance(tokens, dict) or not all(isinstance(n, int) and not isinstance(n, bool) for n in tokens.values()):
        raise ValueError("header field 'tokens' must map encodings to integers")
    return Entry(
        data, _field(head, "commit", str), _field(head, "files", int), _field(head, "truncated", bool), walk_limit,
        warnings, tokens,
    )


class _FsStore:
    """A local folder or any fsspec URL other than s3://."""

    def __init__(self, url: str) -> None:
        import fsspec
        from fsspec.implementations.local import LocalFileSystem

        self.fs, self.root = fsspec.core.url_to_fs(url)
        self.local = isinstance(self.fs, LocalFileSystem)

    def get(self, name: str) -> bytes | None:
        try:
            return self.fs.cat_file(f"{self.root}/{name}")
        except FileNotFoundError:
            return None

    def put(self, name: str, blob: bytes) -> None:
        if self.local:
            write_atomic(Path(f"{self.root}/{name}"), blob)  # temp file + rename: concurrent writers are harmless
        else:
            self.fs.pipe_file(f"{self.root}/{name}", blob)


class _S3Store:
    """``s3://bucket/prefix`` through a boto3 client with the storage deadline; one GET or PUT per call."""

    def __init__(self, url: str, client: Any) -> None:
        parts = urlsplit(url)
        self.bucket, self.prefix, self.client = parts.netloc, parts.path.strip("/"), client

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def get(self, name: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    def put(self, name: str, blob: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(name), Body=blob)  # one PUT replaces atomically


class DigestCache:
    """Get and put digests by repo; every failure of the cache itself is a logged miss, never a failed repo."""

    def __init__(self, url: str, fp: str, store: Any = None, deadline: float | None = None) -> None:
        self.url = url.rstrip("/")
        self.fp = fp
        self.store = store or _FsStore(self.url)
        self.deadline = deadline  # seconds a whole S3 call may take (its own retries included); None: no bound
        self.unavailable = False
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def name(self, repo: Repo) -> str:
        key = cache_key(repo, self.fp)
        return f"{key[:2]}/{key}.digest"

    def path(self, repo: Repo) -> str:
        return f"{self.url}/{self.name(repo)}"

    def close(self) -> None:
        """Stop: calls waiting on the endpoint return at once (the shard is stopping)."""
        self._stop.set()

    def _call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` within the deadline, in a daemon thread that a stopping process does not wait for."""
        if self.deadline is None:
            return fn()
        box: dict[str, Any] = {}
        done = threading.Event()

        def target() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                box["error"] = exc
            done.set()

        threading.Thread(target=target, name="cache-io", daemon=True).start()
        waited = 0.0
        while not done.wait(0.1):
            waited += 0.1
            if self._stop.is_set():
                raise CacheUnavailable("the shard is stopping")
            if waited >= self.deadline:
                raise CacheUnavailable(f"no answer within {self.deadline:.0f} s")
        if "error" in box:
            raise box["error"]
        return box["value"]

    def _failed(self, what: str, repo: Repo, exc: BaseException) -> None:
        from botocore.exceptions import ClientError

        error = f"{type(exc).__name__}: {exc}"
        code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
        if isinstance(exc, ClientError) and code not in BUCKET_ERRORS:  # an error about this entry only
            log.warning(f"digest cache {what} failed", extra={"url": repo.key, "error": error})
            return
        with self._lock:
            if self.unavailable or self._stop.is_set():
                return
            self.unavailable = True
        log.warning(
            "digest cache unavailable: cloning every remaining repo as if missed",
            extra={"cache": self.url, "url": repo.key, "error": error},
        )

    def get(self, repo: Repo) -> Entry | None:
        if repo.pushed_at is None or self.unavailable:  # unknown push time: the repo may have changed
            return None
        name = self.name(repo)
        try:
            blob = self._call(lambda: self.store.get(name))
        except Exception as exc:  # noqa: BLE001 - a cache outage degrades to cloning
            self._failed("read", repo, exc)
            return None
        if blob is None:
            return None
        try:
            return decode_entry(blob, repo, self.fp)
        except ValueError as exc:
            log.warning(
                "corrupt or misplaced digest cache entry: re-cloning",
                extra={"url": repo.key, "entry": f"{self.url}/{name}", "error": str(exc)},
            )
            return None

    def put(self, repo: Repo, entry: Entry) -> None:
        if repo.pushed_at is None or self.unavailable:
            return
        blob = encode_entry(entry, repo, self.fp)
        name = self.name(repo)
        try:
            self._call(lambda: self.store.put(name, blob))
        except Exception as exc:  # noqa: BLE001
            self._failed("write", repo, exc)


def open_cache(settings: IngestParams, timeout: float | None = None) -> DigestCache | None:
    """The cache at ``ingest.cache`` ('' disables it); ``s3://`` uses the DVC remote 'r2' endpoint and credentials,
    every request bounded by ``timeout`` (``storage.timeout``)."""
    url = resolve_location(settings.cache)  # relative: against the project root, not a temporary experiment's copy
    if not url:
        return None
    if url.startswith("s3://"):
        from xgov_digests.core.s3 import ATTEMPTS, DEFAULT_TIMEOUT, open_remote

        timeout = timeout or DEFAULT_TIMEOUT
        client = open_remote("r2").client(timeout, pool=settings.workers)
        deadline = ATTEMPTS * 2 * timeout + 5  # connect + read per attempt, plus botocore's backoff
        return DigestCache(url, fingerprint(settings), _S3Store(url, client), deadline)
    return DigestCache(url, fingerprint(settings))
