"""Typed access to ``params.yaml``, grouped by stage as in the file."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedSeq
from ruamel.yaml.scalarstring import ScalarString

from xgov_digests.core.errors import XgovError
from xgov_digests.core.files import write_atomic

PARAMS_FILE = Path("params.yaml")
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")  # S3's and R2's rule for bucket names


class ParamsError(XgovError, ValueError):
    """params.yaml is missing, malformed or holds an invalid value."""


@dataclass(frozen=True)
class FeedParams:
    """``feed``: where the repository list comes from."""

    url: str
    limit: int = 0
    timeout: float = 60.0
    retries: int = 4
    max_bytes: int = 256 * 1024 * 1024  # the decoded body's cap (the real feed is ~20 MB)


@dataclass(frozen=True)
class ShardParams:
    """``shards``: how the snapshot is split into DVC ``foreach`` items."""

    batch_size: int = 10
    offsets: tuple[int, ...] = tuple(range(10))
    assign: str = "hash"


@dataclass(frozen=True)
class IngestParams:
    """``ingest``: how each shard clones and digests its repos."""

    workers: int = 8
    max_file_size: int = 524288
    max_summary_bytes: int = 524288
    max_files: int = 10000
    max_total_bytes: int = 524288000
    clone_timeout: float = 300.0
    digest_timeout: float = 120.0
    retries: int = 2
    max_failure_ratio: float = 0.5
    allowed_hosts: tuple[str, ...] = ("github.com",)
    allow_file_urls: bool = False
    cache: str = ".cache/digests"
    clone_filter: str = "auto"
    max_tree_entries: int = 200_000
    max_repo_bytes: int = 2 << 30
    token_encoding: str = "o200k_base"  # the tokenizer of each digest's token count (xgov_digests/digest/tokens.py)

    def clone_settings(self) -> CloneSettings:
        """What a shard's clones read of these: every repo is cloned with these settings, cut at the digest's cap."""
        return CloneSettings(
            clone_filter=self.clone_filter,
            clone_timeout=self.clone_timeout,
            retries=self.retries,
            max_file_size=self.max_file_size,
            max_tree_entries=self.max_tree_entries,
            max_repo_bytes=self.max_repo_bytes,
            max_summary_bytes=self.max_summary_bytes,
        )

    def digest_settings(self) -> DigestSettings:
        """What a shard's digests read of these."""
        return DigestSettings(
            max_file_size=self.max_file_size,
            max_summary_bytes=self.max_summary_bytes,
            max_files=self.max_files,
            max_total_bytes=self.max_total_bytes,
        )


@dataclass(frozen=True)
class CloneSettings:
    """One clone's settings, passed whole to ``xgov_digests.clone.strategy.clone_repo`` (and ``clone.git.clone``):
    the ``ingest`` keys a clone reads, under their names in params.yaml, with :class:`IngestParams`'s defaults."""

    clone_filter: str = IngestParams.clone_filter
    clone_timeout: float = IngestParams.clone_timeout  # seconds for the clone and every git command after it
    retries: int = IngestParams.retries
    max_file_size: int = IngestParams.max_file_size
    max_tree_entries: int = IngestParams.max_tree_entries
    max_repo_bytes: int = IngestParams.max_repo_bytes
    # Where the digest will be cut: files it cannot reach stay unwritten until asked for (a CutCheckout). None (a
    # clone on its own, as the tests make): every file the digest's walk can read is checked out.
    max_summary_bytes: int | None = None
    backoff: float = 1.0  # seconds before the first retry, doubled each time (not a param: tests shorten it)


@dataclass(frozen=True)
class DigestSettings:
    """One digest's settings, passed whole to ``xgov_digests.digest.budget.DigestPool.digest``: the ``ingest`` keys
    a digest reads, under their names in params.yaml, with :class:`IngestParams`'s defaults."""

    max_file_size: int = IngestParams.max_file_size
    max_summary_bytes: int = IngestParams.max_summary_bytes
    max_files: int = IngestParams.max_files  # the walk's limits (gitingest's own, by default)
    max_total_bytes: int = IngestParams.max_total_bytes


@dataclass(frozen=True)
class PublishParams:
    """``publish``: where ``xgov-digests publish`` copies the digests under readable keys (not a DVC
    stage)."""

    bucket: str = ""  # "" = the bucket of the DVC remote 'r2'
    prefix: str = "summaries"
    max_prune_ratio: float = 0.1  # --prune refuses to delete more than this share of the published objects


@dataclass(frozen=True)
class StorageParams:
    """``storage``: how long any S3 request may take (the digest cache, publish, the remote checks; not tracked)."""

    timeout: float = 10.0  # seconds to connect and seconds per read; each request has at most 3 attempts


@dataclass(frozen=True)
class Params:
    """All stage parameters."""

    feed: FeedParams
    shards: ShardParams = field(default_factory=ShardParams)
    ingest: IngestParams = field(default_factory=IngestParams)
    publish: PublishParams = field(default_factory=PublishParams)
    storage: StorageParams = field(default_factory=StorageParams)


def _section(raw: dict[str, Any], name: str, cls: type) -> Any:
    data = raw.get(name) or {}
    if not isinstance(data, dict):
        raise ParamsError(f"params.yaml: '{name}' must be a mapping, got {type(data).__name__}")
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ParamsError(
            f"params.yaml: unknown key(s) {', '.join(f'{name}.{k}' for k in unknown)}; "
            f"known keys are {', '.join(sorted(known))}"
        )
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    try:
        return cls(**values)
    except TypeError as exc:
        raise ParamsError(f"params.yaml: section '{name}': {exc}") from exc


def parse_params(raw: dict[str, Any]) -> Params:
    """Build :class:`Params` from the loaded YAML mapping, validating values."""
    if "feed" not in raw or not isinstance(raw["feed"], dict) or "url" not in raw["feed"]:
        raise ParamsError("params.yaml: 'feed.url' is required (an https URL or a local path to repos.json)")
    known = set(Params.__dataclass_fields__)
    if unknown := sorted(set(raw) - known):
        raise ParamsError(
            f"params.yaml: unknown section(s) {', '.join(map(str, unknown))}; known sections are "
            f"{', '.join(sorted(known))}"
        )
    params = Params(
        feed=_section(raw, "feed", FeedParams),
        shards=_section(raw, "shards", ShardParams),
        ingest=_section(raw, "ingest", IngestParams),
        publish=_section(raw, "publish", PublishParams),
        storage=_section(raw, "storage", StorageParams),
    )
    _validate(params)
    return params


def _validate(p: Params) -> None:
    checks = [
        (isinstance(p.feed.limit, int) and p.feed.limit >= 0, "feed.limit must be an integer >= 0 (0 = all repos)"),
        (
            isinstance(p.feed.max_bytes, int) and not isinstance(p.feed.max_bytes, bool) and p.feed.max_bytes >= 1,
            "feed.max_bytes must be an integer >= 1 (bytes of the decoded feed)",
        ),
        (
            isinstance(p.feed.timeout, int | float) and not isinstance(p.feed.timeout, bool) and p.feed.timeout > 0,
            "feed.timeout must be a number of seconds > 0",
        ),
        (
            isinstance(p.shards.batch_size, int) and p.shards.batch_size >= 1,
            "shards.batch_size must be an integer >= 1",
        ),
        (p.shards.assign in ("index", "hash"), "shards.assign must be 'index' or 'hash'"),
        (isinstance(p.ingest.workers, int) and p.ingest.workers >= 1, "ingest.workers must be an integer >= 1"),
        (isinstance(p.ingest.max_file_size, int) and p.ingest.max_file_size > 0, "ingest.max_file_size must be > 0"),
        (
            isinstance(p.ingest.max_summary_bytes, int) and p.ingest.max_summary_bytes >= 1024,
            "ingest.max_summary_bytes must be an integer >= 1024",
        ),
        (isinstance(p.ingest.max_files, int) and p.ingest.max_files >= 1, "ingest.max_files must be an integer >= 1"),
        (
            isinstance(p.ingest.max_total_bytes, int) and p.ingest.max_total_bytes >= 1,
            "ingest.max_total_bytes must be an integer >= 1",
        ),
        (
            isinstance(p.ingest.max_tree_entries, int) and p.ingest.max_tree_entries >= 1,
            "ingest.max_tree_entries must be an integer >= 1",
        ),
        (
            isinstance(p.ingest.max_repo_bytes, int) and p.ingest.max_repo_bytes >= 1 << 20,
            "ingest.max_repo_bytes must be an integer >= 1048576 (1 MB)",
        ),
        (0 <= p.ingest.max_failure_ratio <= 1, "ingest.max_failure_ratio must be between 0 and 1"),
        (p.ingest.clone_timeout > 0, "ingest.clone_timeout must be > 0 seconds"),
        (p.ingest.digest_timeout > 0, "ingest.digest_timeout must be > 0 seconds"),
        (isinstance(p.ingest.retries, int) and p.ingest.retries >= 0, "ingest.retries must be an integer >= 0"),
        (
            p.ingest.token_encoding in ("o200k_base", "cl100k_base"),
            "ingest.token_encoding must be 'o200k_base' (GPT-4o and later) or 'cl100k_base' (GPT-4, GPT-3.5)",
        ),
        (
            p.ingest.clone_filter in ("auto", "off"),
            "ingest.clone_filter must be 'auto' (fetch only the files a digest reads) or 'off' (full shallow clone)",
        ),
        (
            isinstance(p.publish.bucket, str) and (p.publish.bucket == "" or bool(BUCKET_NAME.match(p.publish.bucket))),
            f"publish.bucket must be a bare bucket name such as 'my-bucket' (no s3://, no '/', no prefix: that is "
            f"publish.prefix) or '' for the bucket of the 'r2' remote; got {p.publish.bucket!r}",
        ),
        (
            isinstance(p.publish.max_prune_ratio, int | float) and 0 <= p.publish.max_prune_ratio <= 1,
            "publish.max_prune_ratio must be between 0 and 1",
        ),
        (
            isinstance(p.storage.timeout, int | float) and p.storage.timeout > 0,
            "storage.timeout must be a number of seconds > 0",
        ),
        (
            isinstance(p.publish.prefix, str) and p.publish.prefix.strip("/") != "",
            "publish.prefix must be a non-empty folder such as 'summaries'",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ParamsError(f"params.yaml: {message}")


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and validate ``params.yaml``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ParamsError(f"{path} not found: run from the project root, where params.yaml lives") from exc
    raw = YAML(typ="safe", pure=True).load(text) or {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of stage sections (feed, shards, ingest)")
    return parse_params(raw)


def _keep_style(old: Any, value: Any) -> Any:
    """``value`` in the layout of the node it replaces: a flow list stays a flow list (with its comment), a quoted
    string stays quoted."""
    if isinstance(old, CommentedSeq) and isinstance(value, list | tuple):
        width = len(str(list(old)))
        old[:] = list(value)  # in place: keeps the flow style and the comment attached to the list
        comment = (old.ca.comment or [None])[0]
        if comment is not None:  # the comment keeps its distance from the list's end, not its column
            comment.column = max(0, comment.column + len(str(list(old))) - width)
        return old
    if isinstance(old, ScalarString) and isinstance(value, str):
        return type(old)(value)
    return value


def update_params(path: Path, overrides: dict[str, dict[str, Any]]) -> bool:
    """Set keys of ``params.yaml`` section by section, keeping its comments, order, flow lists and quoting: only the
    lines of the keys that change are rewritten. Returns whether the file changed (it is not written otherwise).
    Raises ParamsError, and leaves the file as it was, when the result would not load."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long value such as the feed URL
    text = path.read_text(encoding="utf-8")
    data = yaml.load(text)
    for section, values in overrides.items():
        for key, value in values.items():
            data[section][key] = _keep_style(data[section].get(key), value)
    out = StringIO()
    yaml.dump(data, out)
    if out.getvalue() == text:
        return False
    parse_params(YAML(typ="safe", pure=True).load(out.getvalue()) or {})  # a value it would refuse is not written
    mode = path.stat().st_mode
    write_atomic(path, out.getvalue().encode("utf-8"))
    path.chmod(mode)
    return True
