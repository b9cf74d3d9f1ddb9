"""Publish the workspace's digests to R2 under readable keys: plan against the published index, upload, prune."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from xgov_digests.files import MERGED_STATS, SUMMARIES_DIR, digest_path, summaries_path
from xgov_digests.params import ParamsError, load_params
from xgov_digests.s3 import bucket_url, storage_options
from xgov_digests.stats import read_stats

log = logging.getLogger("xgov_digests.publish")

REMOTE = "r2"
INDEX_NAME = "_index.json"
CONTENT_TYPE = "text/plain; charset=utf-8"
PUBLISHED = ("ok", "cached")  # statuses that come with a digest file
DEFAULT_PREFIX = "summaries"
DEFAULT_JOBS = 32
DEFAULT_ATTEMPTS = 5  # total attempts per request (botocore "standard" retries), unless AWS_MAX_ATTEMPTS is set
NAMED_FAILURES = 20  # at most this many failed keys are listed one by one


class PublishError(RuntimeError):
    """A configuration or workspace problem: nothing was uploaded; the message says what to fix."""


class RemoteError(RuntimeError):
    """The bucket could not be read (network, endpoint) after retries: nothing was uploaded."""


@dataclass(frozen=True)
class Target:
    """Where the digests go."""

    bucket: str
    prefix: str

    def key(self, owner: str, name: str) -> str:
        return f"{self.prefix}/{owner}/{name}.txt"

    @property
    def index_key(self) -> str:
        return f"{self.prefix}/{INDEX_NAME}"

    def path(self, key: str) -> str:
        """The s3fs path (``bucket/key``) of an object key."""
        return f"{self.bucket}/{key}"

    def digest_key_re(self) -> re.Pattern[str]:
        """Keys this stage owns: ``<prefix>/<owner>/<name>.txt`` and nothing else (never the index, never DVC's)."""
        return re.compile(rf"^{re.escape(self.prefix)}/[^/]+/[^/]+\.txt$")

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class Digest:
    """One repo's current digest in the workspace."""

    key: str
    path: Path
    url: str
    commit: str | None
    pushed_at: str | None
    sha256: str = ""
    size: int = 0

    def entry(self) -> dict[str, Any]:
        """Its ``_index.json`` entry."""
        return {
            "sha256": self.sha256,
            "commit": self.commit,
            "pushedAt": self.pushed_at,
            "url": self.url,
            "bytes": self.size,
        }

    def metadata(self) -> dict[str, str]:
        """S3 user metadata (``x-amz-meta-*``): ASCII only, so a non-ASCII URL is percent-encoded."""
        meta = {"url": quote(self.url, safe=":/?#[]@!$&'()*+,;=%~"), "sha256": self.sha256}
        if self.commit:
            meta["commit"] = self.commit
        if self.pushed_at:
            meta["pushed-at"] = self.pushed_at
        return meta


@dataclass
class Snapshot:
    """What the workspace says should be published."""

    digests: list[Digest]  # status ok/cached: upload when new or changed
    kept: set[str]  # keys of failed/empty repos: their previous object and index entry stay
    keys: set[str] = field(default_factory=set)  # every key of the snapshot (never pruned)


@dataclass
class Plan:
    upload: list[Digest]
    unchanged: int
    kept: int
    dropped: list[str]  # keys of repos no longer in the snapshot (deleted with --prune)
    index: dict[str, dict[str, Any]]  # the index to write once the uploads are done
    new: int = 0


# --- configuration -------------------------------------------------------------------------------------------


def load_target(params: Path, remote: str = REMOTE) -> Target:
    """``publish.bucket`` (default: the bucket of DVC remote ``remote``) and ``publish.prefix`` from params.yaml."""
    try:
        section = load_params(params).publish
    except ParamsError as exc:
        raise PublishError(str(exc)) from exc
    bucket, prefix = section.bucket, section.prefix
    prefix = prefix.strip("/")
    if not prefix or "//" in prefix or any(part in (".", "..") for part in prefix.split("/")):
        raise PublishError(f"{params}: publish.prefix {prefix!r} must be a non-empty folder such as 'summaries'")
    dvc_bucket, dvc_prefix = bucket_url(remote)
    bucket = bucket or dvc_bucket
    if bucket == dvc_bucket and _overlaps(prefix, dvc_prefix):
        raise PublishError(
            f"{params}: publish.prefix '{prefix}' overlaps the DVC remote's '{dvc_prefix or '/'}' in bucket "
            f"'{bucket}': choose a prefix outside it (--prune would otherwise see DVC's files)"
        )
    return Target(bucket, prefix)


def _overlaps(a: str, b: str) -> bool:
    return not b or a == b or a.startswith(b + "/") or b.startswith(a + "/")


def filesystem(jobs: int, remote: str = REMOTE):
    """An s3fs filesystem on the DVC remote's endpoint, with botocore's retries and a pool for ``jobs`` requests."""
    import s3fs

    options = storage_options(remote)
    retries: dict[str, Any] = {"mode": os.environ.get("AWS_RETRY_MODE") or "standard"}
    if not os.environ.get("AWS_MAX_ATTEMPTS"):
        retries["total_max_attempts"] = DEFAULT_ATTEMPTS
    options["config_kwargs"] = {
        **options.get("config_kwargs", {}),
        "retries": retries,
        "max_pool_connections": max(10, jobs),
    }
    # skip_instance_cache: a fresh client per run (fsspec would hand back a cached one for equal options).
    return s3fs.S3FileSystem(skip_instance_cache=True, **options)


# --- the snapshot and the plan -------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def read_snapshot(
    target: Target, stats: Path = MERGED_STATS, summaries: Path = SUMMARIES_DIR, workers: int = 8
) -> Snapshot:
    """The repos of ``data/stats.parquet`` with their digests, hashed. Raises PublishError when a digest is missing."""
    if not stats.exists():
        raise PublishError(f"{stats} not found: run 'dvc repro' (or 'dvc pull') first")
    try:
        frame = read_stats(stats)
    except (ValueError, OSError) as exc:
        raise PublishError(f"{stats}: {exc}") from exc
    digests: list[Digest] = []
    kept: set[str] = set()
    keys: set[str] = set()
    missing: list[str] = []
    for row in frame.sort_values("url", key=lambda s: s.str.lower()).itertuples(index=False):
        key = target.key(row.owner, row.name)
        if key in keys:
            log.warning("two repos publish to one key: keeping the first", extra={"key": key, "url": row.url})
            continue
        keys.add(key)
        if row.status not in PUBLISHED:
            kept.add(key)
            continue
        path = digest_path(summaries_path(row.offset, summaries), row.owner, row.name)
        if not path.is_file():
            missing.append(str(path))
            continue
        digests.append(Digest(key, path, str(row.url), _text(row.commit), _text(row.pushed_at)))
    if missing:
        raise PublishError(
            f"{len(missing)} digest(s) of {stats} are not in the workspace, e.g. {missing[0]}: "
            "run 'dvc pull' or 'dvc checkout' (nothing was published)"
        )
    with ThreadPoolExecutor(workers) as pool:
        digests = list(pool.map(_hashed, digests))
    return Snapshot(digests, kept, keys)


def _hashed(d: Digest) -> Digest:
    data = d.path.read_bytes()
    return Digest(d.key, d.path, d.url, d.commit, d.pushed_at, hashlib.sha256(data).hexdigest(), len(data))


def parse_index(blob: bytes | None, target: Target) -> dict[str, dict[str, Any]]:
    """The published index; an unreadable one is treated as empty (everything is uploaded again, then rewritten)."""
    if blob is None:
        return {}
    try:
        data = json.loads(blob)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        log.warning("unreadable index: publishing everything again", extra={"key": target.index_key, "error": str(exc)})
        return {}
    if not isinstance(data, dict):
        log.warning("index is not a JSON object: publishing everything again", extra={"key": target.index_key})
        return {}
    pattern = target.digest_key_re()
    return {k: v for k, v in data.items() if pattern.match(k) and isinstance(v, dict) and "sha256" in v}


def make_plan(snapshot: Snapshot, old: dict[str, dict[str, Any]]) -> Plan:
    index: dict[str, dict[str, Any]] = {}
    upload: list[Digest] = []
    for d in snapshot.digests:
        entry = d.entry()
        index[d.key] = entry
        if old.get(d.key) != entry:
            upload.append(d)
    for key in snapshot.kept:  # failed or empty this time: whatever was published stays
        if key in old:
            index[key] = old[key]
    dropped = sorted(set(old) - snapshot.keys)
    for key in dropped:  # kept until --prune deletes the object
        index[key] = old[key]
    new = sum(1 for d in upload if d.key not in old)
    return Plan(upload, len(snapshot.digests) - len(upload), len(snapshot.kept), dropped, index, new)


def encode_index(index: dict[str, dict[str, Any]]) -> bytes:
    """Deterministic bytes: the same index is the same object, so an unchanged index is never rewritten."""
    return (json.dumps(index, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


# --- talking to the bucket -----------------------------------------------------------------------------------


def _error_code(exc: BaseException) -> str:
    """The S3 error code (NoSuchBucket, AccessDenied, …) behind an s3fs exception, or ''."""
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            return str(response.get("Error", {}).get("Code", ""))
        seen = seen.__cause__ or seen.__context__
    return ""


def _md5(data: bytes) -> str:
    """Content-MD5: the server checks the bytes it stored against it."""
    return base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


async def read_index(fs, target: Target) -> bytes | None:
    try:
        return await fs._cat_file(target.path(target.index_key), max_concurrency=1)  # one GET, no HEAD first
    except FileNotFoundError as exc:
        if _error_code(exc) == "NoSuchBucket" or "bucket does not exist" in str(exc):
            raise PublishError(f"bucket '{target.bucket}' does not exist at {fs.endpoint_url}") from None
        log.info("no index yet: first publish", extra={"key": target.index_key})
        return None
    except PermissionError as exc:
        raise PublishError(
            f"access denied reading s3://{target.bucket}/{target.index_key} at {fs.endpoint_url}: "
            f"check the credentials and that the token may read and write bucket '{target.bucket}' ({exc})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - network or endpoint trouble, after s3fs's and botocore's retries
        raise RemoteError(
            f"cannot read s3://{target.bucket}/{target.index_key} at {fs.endpoint_url}: {_reason(exc)}"
        ) from None


async def list_published(fs, target: Target) -> set[str]:
    """Keys under the prefix that look like digests (one paginated listing, no per-object requests)."""
    try:
        found = await fs._find(target.path(target.prefix + "/"))
    except Exception as exc:  # noqa: BLE001 - as in read_index
        raise RemoteError(
            f"cannot list s3://{target.bucket}/{target.prefix}/ at {fs.endpoint_url}: {_reason(exc)}"
        ) from None
    pattern = target.digest_key_re()
    keys = {name.split("/", 1)[1] for name in found}
    return {k for k in keys if pattern.match(k)}


class _Progress:
    """fsspec callback: a log line every 5% of the uploads."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.step = total, 0, max(1, total // 20)

    def relative_update(self, inc: int = 1) -> None:
        self.done += inc
        if self.done % self.step == 0 or self.done == self.total:
            log.info(f"uploaded {self.done}/{self.total} digests")


async def upload_one(fs, target: Target, d: Digest) -> Digest:
    """PUT one digest with its metadata; returns what was uploaded (re-read, so the hash matches the bytes sent)."""
    data = d.path.read_bytes()
    sent = Digest(d.key, d.path, d.url, d.commit, d.pushed_at, hashlib.sha256(data).hexdigest(), len(data))
    await fs._pipe_file(
        target.path(d.key),
        data,
        ContentType=CONTENT_TYPE,
        Metadata=sent.metadata(),
        ContentMD5=_md5(data),
    )
    return sent


async def upload_all(fs, target: Target, digests: list[Digest], jobs: int) -> list[Digest | BaseException]:
    """Upload ``jobs`` at a time (fsspec's sliding window); each request retried by botocore and s3fs."""
    from fsspec.asyn import _run_coros_in_chunks

    if not digests:
        return []
    coros = [upload_one(fs, target, d) for d in digests]
    return await _run_coros_in_chunks(coros, batch_size=jobs, callback=_Progress(len(digests)), return_exceptions=True)


async def delete_keys(fs, target: Target, keys: list[str]) -> dict[str, str]:
    """DeleteObjects in batches of 1000; returns the keys that failed and why (s3fs's bulk delete drops errors)."""
    failed: dict[str, str] = {}
    for start in range(0, len(keys), 1000):
        batch = keys[start : start + 1000]
        try:
            out = await fs._call_s3(
                "delete_objects", Bucket=target.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
            )
        except Exception as exc:  # noqa: BLE001 - reported per key below
            failed.update(dict.fromkeys(batch, _reason(exc)))
            continue
        for err in out.get("Errors", []):
            failed[err.get("Key", "?")] = f"{err.get('Code')}: {err.get('Message')}"
    fs.invalidate_cache(target.path(target.prefix))
    return failed


# --- the run -------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    uploaded: int = 0
    bytes: int = 0
    pruned: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # key -> reason (uploads, index, deletes)
    index_written: bool = False


async def run(fs, target: Target, snapshot: Snapshot, *, prune: bool, dry_run: bool, jobs: int) -> tuple[Plan, Outcome]:
    old_blob = await read_index(fs, target)
    old = parse_index(old_blob, target)
    plan = make_plan(snapshot, old)
    prunable: list[str] = []
    if prune:
        listed = await list_published(fs, target)
        prunable = sorted(listed - snapshot.keys)
        for key in plan.dropped:
            plan.index.pop(key, None)
        print(f"publish: {len(prunable)} object(s) of repos no longer in the snapshot to prune", flush=True)
    elif plan.dropped:
        print(
            f"publish: {len(plan.dropped)} object(s) of repos no longer in the snapshot kept (--prune deletes them)",
            flush=True,
        )
    outcome = Outcome(pruned=len(prunable))
    if dry_run:
        for d in plan.upload:
            print(f"would upload {d.key} ({'changed' if d.key in old else 'new'}, {d.size} bytes)")
        for key in prunable:
            print(f"would delete {key}")
        new_blob = encode_index(plan.index)
        if new_blob != old_blob:
            print(f"would write {target.index_key} ({len(plan.index)} entries)")
        outcome.bytes = sum(d.size for d in plan.upload)
        return plan, outcome

    results = await upload_all(fs, target, plan.upload, jobs)
    for d, result in zip(plan.upload, results, strict=True):
        if isinstance(result, BaseException):
            outcome.failed[d.key] = _reason(result)
            log.error("upload failed", extra={"key": d.key, "error": _reason(result)})
            if d.key in old:  # the previous object is still there: so is its entry
                plan.index[d.key] = old[d.key]
            else:
                plan.index.pop(d.key, None)
        else:
            plan.index[d.key] = result.entry()
            outcome.uploaded += 1
            outcome.bytes += result.size

    # Last write: the index names only objects that are now in the bucket.
    new_blob = encode_index(plan.index)
    if new_blob != old_blob:
        try:
            await fs._pipe_file(
                target.path(target.index_key),
                new_blob,
                ContentType="application/json",
                CacheControl="no-cache",
                ContentMD5=_md5(new_blob),
            )
            outcome.index_written = True
        except Exception as exc:  # noqa: BLE001 - reported with the other failures
            outcome.failed[target.index_key] = _reason(exc)
            log.error("index write failed", extra={"key": target.index_key, "error": _reason(exc)})
    if prunable and target.index_key not in outcome.failed:
        # After the index: it no longer names these, so no reader is sent to a deleted object.
        failed = await delete_keys(fs, target, prunable)
        outcome.failed.update(failed)
        outcome.pruned = len(prunable) - len(failed)
    elif prunable:
        outcome.pruned = 0
    return plan, outcome


def _name_failures(failed: dict[str, str]) -> Iterable[str]:
    for i, (key, reason) in enumerate(sorted(failed.items())):
        if i == NAMED_FAILURES:
            yield f"  … and {len(failed) - NAMED_FAILURES} more"
            return
        yield f"  {key}: {reason}"
