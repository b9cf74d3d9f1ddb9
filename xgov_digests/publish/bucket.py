"""Publish's requests to the bucket through boto3's public client: read and write the index (conditionally), list
the prefix, upload, delete, and hold the publish lease."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from xgov_digests.core.errors import XgovError
from xgov_digests.core.futures import finish_order
from xgov_digests.core.s3 import error_code, reason
from xgov_digests.publish.plan import CONTENT_TYPE, Listed, LocalDigest, PublishError, Target

log = logging.getLogger("xgov_digests.publish")

LEASE_TTL = 900.0  # seconds a lease holds without renewal: a killed publisher blocks others at most this long
CONFLICT = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")


class RemoteError(XgovError, RuntimeError):
    """The bucket could not be read (network, endpoint) within the deadline: nothing was uploaded."""


class LeaseError(XgovError, RuntimeError):
    """Another publish holds the lease (or took it over): nothing more is written."""


def _md5(data: bytes) -> str:
    """Content-MD5: the server checks the bytes it stored against it."""
    return base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


def _etag(value: str) -> str:
    return value.strip('"')


class Bucket:
    """The publish target on one S3 client (every request bounded by ``storage.timeout``)."""

    def __init__(self, client: Any, target: Target, endpoint: str | None, secret: str | None = None) -> None:
        self.client, self.target, self.endpoint, self.secret = client, target, endpoint, secret
        self._said_no_index = False
        self.hashed: dict[tuple[str, str], str | None] = {}  # (key, ETag) -> sha256 of its bytes, read in this run

    def _reason(self, exc: BaseException) -> str:
        return reason(exc, self.secret)

    def _raise(self, exc: BaseException, what: str) -> None:
        code = error_code(exc)
        if code == "NoSuchBucket":
            raise PublishError(f"bucket '{self.target.bucket}' does not exist at {self.endpoint}") from None
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise PublishError(
                f"access denied {what} at {self.endpoint}: check the credentials and that the token may read and "
                f"write bucket '{self.target.bucket}' ({self._reason(exc)})"
            ) from None
        raise RemoteError(f"cannot {what} at {self.endpoint}: {self._reason(exc)}") from None

    def read_index(self) -> tuple[bytes | None, str | None]:
        """The index's bytes and ETag, or (None, None) before the first publish (one GET, no HEAD)."""
        key = self.target.index_key
        try:
            obj = self.client.get_object(Bucket=self.target.bucket, Key=key)
            return obj["Body"].read(), _etag(obj["ETag"])
        except Exception as exc:  # noqa: BLE001 - sorted into clear errors below
            if error_code(exc) in ("NoSuchKey", "404"):
                if not self._said_no_index:  # publish reads the index twice (to plan, then under the lease)
                    log.info("no index yet: first publish", extra={"key": key})
                    self._said_no_index = True
                return None, None
            self._raise(exc, f"reading s3://{self.target.bucket}/{key}")
            raise  # unreachable: _raise always raises

    def list_digests(self) -> dict[str, Listed]:
        """Every digest object under the prefix with its size and ETag (one paginated LIST, no per-object HEAD)."""
        pattern = self.target.digest_key_re()
        found: dict[str, Listed] = {}
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.target.bucket, Prefix=self.target.prefix + "/"
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    if pattern.match(obj["Key"]):
                        found[obj["Key"]] = Listed(int(obj["Size"]), _etag(obj["ETag"]))
        except Exception as exc:  # noqa: BLE001
            self._raise(exc, f"listing s3://{self.target.bucket}/{self.target.prefix}/")
        return found

    def upload(self, d: LocalDigest) -> dict[str, Any]:
        """PUT one digest with its metadata; returns its index entry (hash of the bytes sent, the bucket's ETag)."""
        sent, data = d.read()
        out = self.client.put_object(
            Bucket=self.target.bucket,
            Key=d.key,
            Body=data,
            ContentType=CONTENT_TYPE,
            Metadata=sent.metadata(),
            ContentMD5=_md5(data),
        )
        return sent.entry(_etag(out["ETag"]))

    def upload_all(
        self, digests: list[LocalDigest], jobs: int, tick: Callable[[], None] | None = None
    ) -> list[dict[str, Any] | BaseException]:
        """Upload ``jobs`` at a time; ``tick`` after each (the lease's renewal). Progress: a bar on a terminal, else
        a log line every 10 s (the run's summary line gives the totals)."""
        from xgov_digests.shard.progress import CountProgress

        results: list[dict[str, Any] | BaseException] = [RuntimeError("not run")] * len(digests)
        progress = CountProgress(len(digests), "publish", "digest", log)
        try:
            with ThreadPoolExecutor(jobs, thread_name_prefix="upload") as pool:
                try:
                    # not as_completed: an interrupt while it holds a future's lock leaves the pool unable to shut down
                    for done in finish_order(pool, lambda i: self.upload(digests[i]), range(len(digests))):
                        results[done.item] = done.error if done.error is not None else done.value
                        progress.update()
                        if tick:
                            tick()
                except BaseException:  # SIGTERM/Ctrl-C: queued uploads never start; the caller releases the lease
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
        finally:
            progress.close()
        return results

    def content_sha256(self, listed: dict[str, str], jobs: int) -> dict[str, str | None]:
        """The sha256 of each object's bytes as stored, ``listed`` mapping key -> the ETag LIST reported: one GET
        with ``If-Match`` on that ETag, so the bytes hashed are the object listed (None when it changed meanwhile or
        cannot be read). Never the object's own ``sha256`` metadata: whoever overwrites an object can set that too."""

        def get(item: tuple[str, str]) -> str | None:
            if item in self.hashed:  # the second planning round, under the lease, asks again
                return self.hashed[item]
            key, etag = item
            try:
                body = self.client.get_object(Bucket=self.target.bucket, Key=key, IfMatch=f'"{etag}"')["Body"]
                digest = hashlib.sha256()
                for chunk in body.iter_chunks(1 << 16):
                    digest.update(chunk)
                return digest.hexdigest()
            except Exception:  # noqa: BLE001 - unknown: the object is uploaded again
                return None

        items = list(listed.items())
        with ThreadPoolExecutor(max(1, jobs), thread_name_prefix="verify") as pool:
            found = dict(zip(items, pool.map(get, items), strict=True))
        self.hashed.update(found)
        return {key: found[(key, etag)] for key, etag in items}

    def put_index(self, blob: bytes, etag: str | None) -> str:
        """Write the index only if it is still the one read (``If-Match``), or still absent (``If-None-Match``)."""
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        out = self.client.put_object(
            Bucket=self.target.bucket,
            Key=self.target.index_key,
            Body=blob,
            ContentType="application/json",
            CacheControl="no-cache",
            ContentMD5=_md5(blob),
            **condition,
        )
        return _etag(out["ETag"])

    def delete(self, keys: list[str]) -> dict[str, str]:
        """DeleteObjects in batches of 1000; returns the keys that failed and why."""
        failed: dict[str, str] = {}
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            try:
                out = self.client.delete_objects(
                    Bucket=self.target.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
                )
            except Exception as exc:  # noqa: BLE001 - reported per key
                failed.update(dict.fromkeys(batch, self._reason(exc)))
                continue
            for err in out.get("Errors", []):
                failed[err.get("Key", "?")] = f"{err.get('Code')}: {err.get('Message')}"
        return failed


class Lease:
    """``<prefix>/_publish.lease``: one publisher writes at a time. Taken with ``If-None-Match: *``, renewed with
    ``If-Match``, taken over only once expired (a killed publisher), deleted at the end.

    Expiry is judged by the bucket's clock alone: a lease expires ``ttl`` seconds (the holder's, from its body; else
    this run's) after its object's ``Last-Modified``, against the ``Date`` of the bucket's answer, so publishers whose
    clocks disagree agree on it. A lease whose body is unreadable (not JSON, cut short) expires the same way.

    The lease's body carries a nonce of this run: a retried PUT whose first answer was lost finds its own lease and
    goes on, and renewal and release recognise it by the nonce even where the endpoint's PUT ETags differ from its
    GET ETags."""

    def __init__(self, bucket: Bucket, ttl: float = LEASE_TTL) -> None:
        self.bucket, self.ttl = bucket, ttl
        self.etag: str | None = None
        self.renewed = 0.0
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self.nonce = uuid.uuid4().hex

    @property
    def key(self) -> str:
        return self.bucket.target.lease_key

    def _body(self) -> bytes:
        return json.dumps(
            {"holder": self.holder, "nonce": self.nonce, "ttl": self.ttl, "expires": time.time() + self.ttl}
        ).encode()

    def _put(self, **condition: str) -> None:
        b = self.bucket
        out = b.client.put_object(Bucket=b.target.bucket, Key=self.key, Body=self._body(), **condition)
        self.etag, self.renewed = _etag(out["ETag"]), time.monotonic()

    def _adopt(self) -> bool:
        """The lease in the bucket is this run's (a lost response, or an ETag the endpoint reports differently):
        take its GET ETag as ours."""
        current = self._current()
        if current.nonce == self.nonce and current.etag:
            self.etag, self.renewed = current.etag, time.monotonic()
            return True
        return False

    def acquire(self, wait: float) -> None:
        deadline = time.monotonic() + wait
        told = False
        while True:
            try:
                self._put(IfNoneMatch="*")
                return
            except Exception as exc:  # noqa: BLE001
                if error_code(exc) not in CONFLICT:
                    self.bucket._raise(exc, f"taking the publish lease s3://{self.bucket.target.bucket}/{self.key}")
            current = self._current()
            if current.nonce == self.nonce and current.etag:  # our own PUT was stored; its answer was lost
                log.info("the publish lease is this run's (a retried PUT)", extra={"key": self.key})
                self.etag, self.renewed = current.etag, time.monotonic()
                return
            if current.etag and current.expired:
                log.warning("taking over an expired publish lease", extra={"holder": current.holder, "key": self.key})
                print(f"publish: taking over the expired publish lease of {current.holder}", file=sys.stderr)
                try:
                    self._put(IfMatch=current.etag)
                    return
                except Exception as exc:  # noqa: BLE001
                    if error_code(exc) not in CONFLICT:
                        self.bucket._raise(exc, f"taking over the publish lease {self.key}")
                    if self._adopt():
                        return
            until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(current.expires))
            if time.monotonic() >= deadline:
                raise LeaseError(
                    f"another publish ({current.holder}) holds s3://{self.bucket.target.bucket}/{self.key} until "
                    f"{until}: run again when it has finished (a killed publish's lease is taken over once it expires)"
                )
            if not told and current.etag:
                told = True
                print(
                    f"publish: waiting for the publish lease held by {current.holder} (until {until}; a crashed "
                    f"publish's lease is taken over then; waiting at most {wait:.0f}s)",
                    file=sys.stderr,
                    flush=True,
                )
            time.sleep(0.5)

    def _current(self) -> LeaseState:
        b = self.bucket
        try:
            obj = b.client.get_object(Bucket=b.target.bucket, Key=self.key)
            body = obj["Body"].read()
        except Exception as exc:  # noqa: BLE001 - released meanwhile, or not answered: try again
            if error_code(exc) in ("NoSuchKey", "404"):
                return LeaseState("?", time.time() + self.ttl, None, None)
            return LeaseState("?", 0.0, None, None)
        try:
            info = json.loads(body)
            info = info if isinstance(info, dict) else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            info = {}  # unreadable: expires by its Last-Modified and this run's ttl
        ttl = info.get("ttl")
        ttl = float(ttl) if isinstance(ttl, int | float) and not isinstance(ttl, bool) and 0 < ttl else self.ttl
        modified = obj["LastModified"].timestamp()
        date = obj.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        try:
            now = parsedate_to_datetime(date).timestamp() if date else time.time()
        except (TypeError, ValueError):
            now = time.time()
        holder = str(info.get("holder", "?")) if info else "? (an unreadable lease)"
        nonce = info.get("nonce")
        return LeaseState(
            holder,
            modified + ttl,
            _etag(obj["ETag"]),
            nonce if isinstance(nonce, str) else None,
            expired=now > modified + ttl,
        )

    def renew_if_due(self) -> None:
        if self.etag and time.monotonic() - self.renewed > self.ttl / 3:
            try:
                self._put(IfMatch=self.etag)
            except Exception as exc:  # noqa: BLE001
                if error_code(exc) in CONFLICT and self._adopt():  # still ours: the ETag we kept was the PUT's
                    try:
                        self._put(IfMatch=self.etag)
                        return
                    except Exception as again:  # noqa: BLE001
                        exc = again
                raise LeaseError(f"lost the publish lease {self.key}: {self.bucket._reason(exc)}") from None

    def release(self) -> None:
        if not self.etag:
            return
        b = self.bucket
        try:
            if self._current().nonce == self.nonce:
                b.client.delete_object(Bucket=b.target.bucket, Key=self.key)
        except Exception as exc:  # noqa: BLE001 - it expires by itself
            log.warning("could not release the publish lease", extra={"key": self.key, "error": b._reason(exc)})
        self.etag = None


@dataclass(frozen=True)
class LeaseState:
    """The lease object as read: who holds it, until when, its GET ETag (None: no lease) and its run's nonce."""

    holder: str
    expires: float  # by the bucket's clock: Last-Modified + the holder's ttl
    etag: str | None
    nonce: str | None
    expired: bool = False
