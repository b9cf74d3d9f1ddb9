"""What publish should do: the target, the workspace's digests, the published index, and the plan that compares them
with the bucket's listing (no I/O besides reading the workspace)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from xgov_digests.core.errors import XgovError
from xgov_digests.core.files import MERGED_STATS, SUMMARIES_DIR, digest_path, summaries_path
from xgov_digests.core.params import Params, ParamsError, load_params
from xgov_digests.core.s3 import S3ConfigError, bucket_url
from xgov_digests.schemas.stats import read_rows

log = logging.getLogger("xgov_digests.publish")

REMOTE = "r2"
INDEX_NAME = "_index.json"
LEASE_NAME = "_publish.lease"
CONTENT_TYPE = "text/plain; charset=utf-8"
PUBLISHED = ("ok", "cached")  # statuses that come with a digest file


class PublishError(XgovError, RuntimeError):
    """A configuration or workspace problem: nothing was uploaded; the message says what to fix."""


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

    @property
    def lease_key(self) -> str:
        return f"{self.prefix}/{LEASE_NAME}"

    def digest_key_re(self) -> re.Pattern[str]:
        """Keys this stage owns: ``<prefix>/<owner>/<name>.txt`` and nothing else (never the index, never DVC's)."""
        return re.compile(rf"^{re.escape(self.prefix)}/[^/]+/[^/]+\.txt$")

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class Listed:
    """One object of the bucket's listing."""

    size: int
    etag: str  # without quotes


@dataclass(frozen=True)
class LocalDigest:
    """One repo's current digest in the workspace, to be published."""

    key: str
    path: Path
    url: str
    commit: str | None
    pushed_at: str | None
    tokens: int = 0  # its token count in ingest.token_encoding (0: not counted, left out of the entry)
    sha256: str = ""
    size: int = 0

    def entry(self, etag: str | None = None) -> dict[str, Any]:
        """Its ``_index.json`` entry; ``etag`` is the bucket's ETag of the uploaded object."""
        out: dict[str, Any] = {
            "sha256": self.sha256,
            "commit": self.commit,
            "pushedAt": self.pushed_at,
            "url": self.url,
            "bytes": self.size,
        }
        if self.tokens:
            out["tokens"] = self.tokens
        if etag is not None:
            out["etag"] = etag
        return out

    def metadata(self) -> dict[str, str]:
        """S3 user metadata (``x-amz-meta-*``): ASCII only, so a non-ASCII URL is percent-encoded."""
        meta = {"url": quote(self.url, safe=":/?#[]@!$&'()*+,;=%~"), "sha256": self.sha256}
        if self.commit:
            meta["commit"] = self.commit
        if self.pushed_at:
            meta["pushed-at"] = self.pushed_at
        return meta

    def read(self) -> tuple[LocalDigest, bytes]:
        """The bytes and the digest they describe: hashed from exactly these bytes, commit and pushed-at from their
        own header (the stats row may be older than the file)."""
        data = self.path.read_bytes()
        header = header_fields(data)
        commit = header.get("Commit") or self.commit
        pushed = header.get("Pushed at")
        pushed_at = pushed if pushed and pushed != "unknown" else self.pushed_at
        if commit != self.commit:
            log.warning(
                "digest header and stats disagree on the commit: publishing the header's",
                extra={"key": self.key, "header": commit, "stats": self.commit},
            )
        return replace(
            self, sha256=hashlib.sha256(data).hexdigest(), size=len(data), commit=commit, pushed_at=pushed_at
        ), data


HEADER_FIELDS = ("Repository", "URL", "Commit", "Pushed at", "Files analyzed")


def header_fields(data: bytes) -> dict[str, str]:
    """The ``Name: value`` lines of a digest's header (xgov_digests.digest.format.render_header), in its first KiB."""
    fields: dict[str, str] = {}
    for line in data[:1024].decode("utf-8", errors="replace").splitlines()[: len(HEADER_FIELDS)]:
        name, sep, value = line.partition(": ")
        if not sep or name not in HEADER_FIELDS:
            break
        fields[name] = value.strip()
    return fields


@dataclass
class WorkspaceDigests:
    """What the workspace says should be published."""

    digests: list[LocalDigest]  # status ok/cached: upload when new, changed or not as recorded in the bucket
    kept: set[str]  # keys of failed/empty repos: their previous object and index entry stay
    keys: set[str] = field(default_factory=set)  # every key of the snapshot (never pruned)
    rows: int = 0  # rows of data/stats.parquet


@dataclass
class Plan:
    upload: list[LocalDigest]
    reasons: dict[str, str]  # key -> why it is uploaded (new, changed, missing from the bucket, …)
    unchanged: int
    kept: int
    dropped: list[str]  # keys of repos no longer in the snapshot (deleted with --prune)
    index: dict[str, dict[str, Any]]  # the index to write once the uploads are done
    forgotten: list[str] = field(default_factory=list)  # entries dropped: their object is gone and cannot be rebuilt

    @property
    def new(self) -> int:
        return sum(1 for r in self.reasons.values() if r == "new")

    @property
    def restored(self) -> int:
        return sum(1 for r in self.reasons.values() if r.startswith(("missing", "differs")))


# --- configuration -------------------------------------------------------------------------------------------


def load_settings(params: Path) -> Params:
    try:
        return load_params(params)
    except ParamsError as exc:
        raise PublishError(str(exc)) from exc


def load_target(settings: Params, params: Path, remote: str = REMOTE) -> Target:
    """``publish.bucket`` (default: the bucket of DVC remote ``remote``) and ``publish.prefix``."""
    bucket, prefix = settings.publish.bucket, settings.publish.prefix.strip("/")
    if not prefix or "//" in prefix or any(part in (".", "..") for part in prefix.split("/")):
        raise PublishError(f"{params}: publish.prefix {prefix!r} must be a non-empty folder such as 'summaries'")
    try:
        dvc_bucket, dvc_prefix = bucket_url(remote)
    except S3ConfigError as exc:
        raise PublishError(str(exc)) from exc
    bucket = bucket or dvc_bucket
    if bucket == dvc_bucket and _overlaps(prefix, dvc_prefix):
        raise PublishError(
            f"{params}: publish.prefix '{prefix}' overlaps the DVC remote's '{dvc_prefix or '/'}' in bucket "
            f"'{bucket}': choose a prefix outside it (--prune would otherwise see DVC's files)"
        )
    return Target(bucket, prefix)


def _overlaps(a: str, b: str) -> bool:
    return not b or a == b or a.startswith(b + "/") or b.startswith(a + "/")


# --- the workspace -------------------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


KEYS = ("url", "owner", "name", "offset", "status")  # the stats columns a published row cannot do without


def read_workspace(
    target: Target, stats: Path = MERGED_STATS, summaries: Path = SUMMARIES_DIR, workers: int = 8
) -> WorkspaceDigests:
    """The repos of ``data/stats.parquet`` with their digests, hashed. Raises PublishError when a digest is missing."""
    if not stats.exists():
        raise PublishError(f"{stats} not found: run 'dvc repro' (or 'dvc pull') first")
    try:
        rows = read_rows(stats, [*KEYS, "commit", "pushed_at", "tokens"], required=KEYS)
    except (ValueError, OSError) as exc:
        raise PublishError(f"{stats}: {exc}") from exc
    digests: list[LocalDigest] = []
    kept: set[str] = set()
    keys: set[str] = set()
    missing: list[str] = []
    for row in sorted(rows, key=lambda r: r["url"].lower()):
        key = target.key(row["owner"], row["name"])
        if key in keys:
            log.warning("two repos publish to one key: keeping the first", extra={"key": key, "url": row["url"]})
            continue
        keys.add(key)
        if row["status"] not in PUBLISHED:
            kept.add(key)
            continue
        path = digest_path(summaries_path(row["offset"], summaries), row["owner"], row["name"])
        if not path.is_file():
            missing.append(str(path))
            continue
        digests.append(
            LocalDigest(
                key, path, str(row["url"]), _text(row["commit"]), _text(row["pushed_at"]), int(row["tokens"] or 0)
            )
        )
    if missing:
        raise PublishError(
            f"{len(missing)} digest(s) of {stats} are not in the workspace, e.g. {missing[0]}: "
            "run 'dvc pull' or 'dvc checkout' (nothing was published)"
        )
    with ThreadPoolExecutor(workers) as pool:
        digests = [d for d, _ in pool.map(LocalDigest.read, digests)]
    return WorkspaceDigests(digests, kept, keys, len(rows))


# --- the index and the plan ----------------------------------------------------------------------------------


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


def in_bucket(entry: dict[str, Any], obj: Listed | None) -> bool:
    """The listed object is the one the index entry records (same size and ETag)."""
    return obj is not None and obj.size == entry.get("bytes") and obj.etag == entry.get("etag")


# What an entry says of the object's bytes and their header: a change in one of these is a new upload. The rest
# (etag, tokens) describe the object without being in it: an index entry that lacks tokens, or counted them with
# another encoding, is brought up to date in the index alone, with no upload.
OBJECT_FIELDS = ("sha256", "commit", "pushedAt", "url", "bytes")


def _why(entry: dict[str, Any] | None, want: dict[str, Any], obj: Listed | None) -> str | None:
    if entry is None:
        return "new"
    if any(entry.get(k) != want.get(k) for k in OBJECT_FIELDS):
        return "changed"
    if obj is None:
        return "missing from the bucket"
    if not in_bucket(entry, obj):
        return "differs in the bucket"
    return None


def make_plan(ws: WorkspaceDigests, old: dict[str, dict[str, Any]], listed: dict[str, Listed]) -> Plan:
    """Upload what is new, changed, or not in the bucket as the index records it; keep the rest."""
    index: dict[str, dict[str, Any]] = {}
    upload: list[LocalDigest] = []
    reasons: dict[str, str] = {}
    for d in ws.digests:
        why = _why(old.get(d.key), d.entry(), listed.get(d.key))
        if why is None:
            index[d.key] = d.entry(old[d.key].get("etag"))  # the object's record as it was, today's token count
        else:
            upload.append(d)
            reasons[d.key] = why
            if d.key in old and in_bucket(old[d.key], listed.get(d.key)):
                index[d.key] = old[d.key]  # until the new upload succeeds
    forgotten: list[str] = []
    dropped = sorted(set(old) - ws.keys)
    for key in sorted(ws.kept & set(old)) + dropped:  # failed, empty or dropped: whatever was published stays …
        if in_bucket(old[key], listed.get(key)):
            index[key] = old[key]
        else:  # … unless it is gone or replaced: the index must not name it
            forgotten.append(key)
    dropped = [k for k in dropped if k in index]
    unchanged = len(ws.digests) - len(upload)
    return Plan(upload, reasons, unchanged, len(ws.kept), dropped, index, forgotten)


def encode_index(index: dict[str, dict[str, Any]]) -> bytes:
    """Deterministic bytes: the same index is the same object, so an unchanged index is never rewritten."""
    return (json.dumps(index, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
