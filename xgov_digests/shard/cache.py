"""The repo-level digest cache: a digest is reused while its repo's ``pushedAt`` and the digest settings hold.

Entries live under an fsspec URL (a local folder) or ``s3://bucket/prefix`` on the DVC remote 'r2' endpoint, one
object each: a JSON header line (checksum, size, commit, files, truncated, and the entry's identity: URL, owner,
name, ``pushedAt``, fingerprint) followed by the digest bytes. A corrupt, truncated or misplaced entry is a miss,
never an output; the fresh digest then replaces it. Every S3 request has a deadline (``storage.timeout``): an
endpoint that does not answer makes the cache unavailable for the rest of the run (one warning; repos are cloned as
if missed).

Anyone who can write to a shared bucket could otherwise plant a digest: every field of an entry's key and header
is public. So each entry carries an HMAC-SHA256 of its header (which holds the digest's sha256) under a secret that
is never stored in the bucket: ``XGOV_CACHE_KEY`` in the environment, the same on every machine sharing the cache.
An entry whose MAC does not verify (forged, written under another secret, unsigned) or whose ``pushedAt`` is not the
repo's (an old entry copied to a new key: a rollback) is a miss, named in a warning. The shared (S3) cache refuses
to start without the secret; a local cache signs and checks entries when the secret is set, and works without it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from xgov_digests.core.errors import XgovError
from xgov_digests.core.files import resolve_location, write_atomic
from xgov_digests.core.params import IngestParams, StorageParams
from xgov_digests.core.repo import Repo
from xgov_digests.digest.version import DIGEST_VERSIONS, FORMAT_VERSION

log = logging.getLogger(__name__)
ENTRY_VERSION = 3
# S3 errors that concern the whole cache, not one entry: the cache is unavailable for the rest of the run. A read's
# 403 is not one of them: AWS answers 403 for a missing key to a token without s3:ListBucket (R2 answers 404).
BUCKET_ERRORS = ("NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403")
KEY_ERRORS_ON_READ = ("AccessDenied", "403")
SECRET_ENV = "XGOV_CACHE_KEY"
MIN_SECRET = 32  # characters: 'python -c "import secrets; print(secrets.token_hex(32))"' gives 64
NO_SECRET = (
    f"the shared digest cache signs its entries with a secret that is not stored in the bucket: set {SECRET_ENV} "
    f'(at least {MIN_SECRET} characters, e.g. from python -c "import secrets; print(secrets.token_hex(32))"), the '
    "same on every machine that shares the cache (a CI secret for the workers), or set ingest.cache to a local "
    "folder or ''"
)
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
    sha256: str = field(default="", compare=False)  # of data: set by decode_entry, which checked it against the bytes


class CacheUnavailable(XgovError, RuntimeError):
    """The cache's endpoint did not answer within the deadline, or the shard is stopping."""


class CacheSecretError(XgovError, RuntimeError):
    """The shared cache has no usable secret: the message says how to set it."""


def cache_secret(required: bool, environ: dict[str, str] | None = None) -> bytes | None:
    """The entries' signing secret from ``XGOV_CACHE_KEY``; raises CacheSecretError when ``required`` and it is
    unset or too short (it is never logged)."""
    value = (os.environ if environ is None else environ).get(SECRET_ENV, "")
    if value and len(value) < MIN_SECRET:
        raise CacheSecretError(f"{SECRET_ENV} is {len(value)} characters, fewer than {MIN_SECRET}: {NO_SECRET}")
    if not value:
        if required:
            raise CacheSecretError(NO_SECRET)
        return None
    return value.encode("utf-8")


def _mac(secret: bytes, head: dict[str, Any]) -> str:
    body = json.dumps({k: v for k, v in head.items() if k != "mac"}, sort_keys=True).encode()
    return hmac.new(secret, b"xgov-digest-cache-entry\n" + body, hashlib.sha256).hexdigest()


def fingerprint(settings: IngestParams) -> str:
    """Everything besides the repo that shapes a digest."""
    parts = {
        "max_file_size": settings.max_file_size,
        "max_summary_bytes": settings.max_summary_bytes,
        "max_files": settings.max_files,
        "max_total_bytes": settings.max_total_bytes,
        "format": FORMAT_VERSION,
        "versions": DIGEST_VERSIONS,
    }
    return json.dumps(parts, sort_keys=True)


def cache_key(repo: Repo, fp: str) -> str:
    """sha256 over the normalised URL, the header's fields (URL as written, owner, name), pushedAt, fingerprint."""
    material = json.dumps([repo.key, repo.url, repo.owner, repo.name, repo.pushed_at, fp])
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def encode_entry(entry: Entry, repo: Repo, fp: str, secret: bytes | None = None) -> bytes:
    head: dict[str, Any] = {
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
        "pushedAt": repo.pushed_at,
        "fingerprint": fp,
    }
    if entry.tokens:  # optional: an entry without it (older) is still a hit, its tokens counted again
        head["tokens"] = entry.tokens
    if secret is not None:  # last: the signature covers every other header field, the tokens included
        head["mac"] = _mac(secret, head)
    return json.dumps(head, sort_keys=True).encode() + b"\n" + entry.data


def _field(head: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = head.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"header field {name!r} is missing or not {getattr(kind, '__name__', kind)}")
    return value


class Unauthentic(ValueError):
    """The entry's MAC does not verify under this cache's secret, or it is another ``pushedAt``'s (a rollback)."""


def decode_entry(blob: bytes, repo: Repo | None = None, fp: str | None = None, secret: bytes | None = None) -> Entry:
    """Parse and verify an entry (and, given ``repo`` and ``fp``, that it belongs to them; given ``secret``, that it
    was signed with it); raises ValueError when it is corrupt, truncated, of another shape or another repo's, and
    Unauthentic when it is forged, signed with another secret, or of another ``pushedAt``."""
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
    if secret is not None:
        mac = head.get("mac")
        if not isinstance(mac, str):
            raise Unauthentic(f"entry is not signed (the shared cache needs {SECRET_ENV} on every writer)")
        if not hmac.compare_digest(mac, _mac(secret, head)):
            raise Unauthentic(f"entry's signature does not verify: forged, or written under another {SECRET_ENV}")
    sha256 = hashlib.sha256(data).hexdigest()
    if len(data) != _field(head, "size", int) or sha256 != _field(head, "sha256", str):
        raise ValueError("checksum mismatch")
    if repo is not None:
        found = (head.get("url"), head.get("owner"), head.get("name"))
        if found != (repo.url, repo.owner, repo.name):
            raise ValueError(f"entry belongs to {found[1]}/{found[2]} ({found[0]}), not {repo.owner}/{repo.name}")
        if head.get("pushedAt") != repo.pushed_at:
            raise Unauthentic(
                f"entry is of pushedAt {head.get('pushedAt')!r}, not the repo's {repo.pushed_at!r} (an older digest "
                "under a newer key: a rollback)"
            )
    if fp is not None and head.get("fingerprint") != fp:
        raise ValueError("entry was made with other digest settings (fingerprint mismatch)")
    walk_limit, warnings = head.get("walk_limit"), head.get("warnings")
    if not all(v is None or isinstance(v, str) for v in (walk_limit, warnings)):
        raise ValueError("header fields 'walk_limit' and 'warnings' must be strings or null")
    tokens = head.get("tokens") or {}
    if not isinstance(tokens, dict) or not all(isinstance(n, int) and not isinstance(n, bool) for n in tokens.values()):
        raise ValueError("header field 'tokens' must map encodings to integers")
    return Entry(
        data,
        _field(head, "commit", str),
        _field(head, "files", int),
        _field(head, "truncated", bool),
        walk_limit,
        warnings,
        tokens,
        sha256,
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

    def delete(self, name: str) -> bool:
        try:
            self.fs.rm_file(f"{self.root}/{name}")
            return True
        except FileNotFoundError:
            return False

    def delete_all(self) -> int:
        if not self.fs.exists(self.root):
            return 0
        names = [n for n in self.fs.find(self.root) if n.endswith(".digest")]
        for n in names:
            self.fs.rm_file(n)
        return len(names)


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

    def delete(self, name: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(name))
        except ClientError:
            return False
        self.client.delete_object(Bucket=self.bucket, Key=self._key(name))
        return True

    def delete_all(self) -> int:
        """Every ``*.digest`` object under the prefix (never anything else the prefix may hold)."""
        deleted = 0
        prefix = f"{self.prefix}/" if self.prefix else ""
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", []) if o["Key"].endswith(".digest")]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                deleted += len(keys)
        return deleted


class DigestCache:
    """Get and put digests by repo; every failure of the cache itself is a logged miss, never a failed repo."""

    def __init__(
        self, url: str, fp: str, store: Any = None, deadline: float | None = None, secret: bytes | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.fp = fp
        self.secret = secret  # signs and checks entries (None: a local cache without XGOV_CACHE_KEY)
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
        key_only = code not in BUCKET_ERRORS or (what == "read" and code in KEY_ERRORS_ON_READ)
        if isinstance(exc, ClientError) and key_only:  # an error about this entry only
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
            return decode_entry(blob, repo, self.fp, self.secret)
        except Unauthentic as exc:
            log.warning(
                "digest cache entry failed authentication: re-cloning",
                extra={"url": repo.key, "entry": f"{self.url}/{name}", "error": str(exc)},
            )
            return None
        except ValueError as exc:
            log.warning(
                "corrupt or misplaced digest cache entry: re-cloning",
                extra={"url": repo.key, "entry": f"{self.url}/{name}", "error": str(exc)},
            )
            return None

    def put(self, repo: Repo, entry: Entry) -> None:
        if repo.pushed_at is None or self.unavailable:
            return
        blob = encode_entry(entry, repo, self.fp, self.secret)
        name = self.name(repo)
        try:
            self._call(lambda: self.store.put(name, blob))
        except Exception as exc:  # noqa: BLE001
            self._failed("write", repo, exc)


def open_cache(settings: IngestParams, storage: StorageParams) -> DigestCache | None:
    """The cache at ``ingest.cache`` ('' disables it); ``s3://`` uses the DVC remote 'r2' endpoint and credentials,
    every request bounded by ``storage.timeout``, and needs ``XGOV_CACHE_KEY``: raises
    :class:`xgov_digests.core.s3.S3ConfigError` saying how to set what is missing."""
    from xgov_digests.core.s3 import ATTEMPTS, S3ConfigError, open_remote

    url = resolve_location(settings.cache)  # relative: against the project root, not a temporary experiment's copy
    if not url:
        return None
    shared = url.startswith("s3://")
    try:
        secret = cache_secret(required=shared)
    except CacheSecretError as exc:
        raise S3ConfigError(str(exc)) from None
    if shared:
        timeout = storage.timeout
        client = open_remote("r2").client(timeout, pool=settings.workers)
        deadline = ATTEMPTS * 2 * timeout + 5  # connect + read per attempt, plus botocore's backoff
        return DigestCache(url, fingerprint(settings), _S3Store(url, client), deadline, secret)
    return DigestCache(url, fingerprint(settings), secret=secret)


def drop(settings: IngestParams, storage: StorageParams, repos: list[Repo] | None) -> int:
    """Delete the cache entries of ``repos`` (under the current settings' fingerprint), or, with ``repos`` None,
    every entry of the cache; returns how many were deleted. The next shard run clones those repos again."""
    cache = open_cache(settings, storage)
    if cache is None:
        return 0
    if repos is None:
        return int(cache.store.delete_all())
    return sum(bool(cache.store.delete(cache.name(r))) for r in repos)


def drop_named(settings: IngestParams, storage: StorageParams, names: list[str], manifests: Path | None = None) -> int:
    """Delete the entries of the repos named ``owner/name`` (any case), found in the shards' manifests (the
    snapshot the next run digests). Raises ValueError naming any name the manifests do not hold."""
    from xgov_digests.core.files import MANIFEST_DIR

    wanted = {n.strip().lower(): n for n in names}
    found: list[Repo] = []
    for path in sorted((manifests or MANIFEST_DIR).glob("shard-*.json")):
        for e in json.loads(path.read_bytes()).get("repos", []):
            if f"{e['owner']}/{e['name']}".lower() in wanted:
                found.append(Repo(e["url"], e["owner"], e["name"], e.get("pushedAt")))
    unknown = sorted(set(wanted) - {f"{r.owner}/{r.name}".lower() for r in found})
    if unknown:
        raise ValueError(
            f"not in the snapshot's manifests: {', '.join(wanted[u] for u in unknown)} (run 'dvc repro fetch' or "
            "'dvc pull' first, or check the spelling)"
        )
    return drop(settings, storage, found)
