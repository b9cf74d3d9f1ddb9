"""Typed access to ``params.yaml``, grouped by stage as in the file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

PARAMS_FILE = Path("params.yaml")


class ParamsError(ValueError):
    """params.yaml is missing, malformed or holds an invalid value."""


@dataclass(frozen=True)
class FeedParams:
    """``feed``: where the repository list comes from."""

    url: str
    limit: int = 0
    timeout: float = 60.0
    retries: int = 4


@dataclass(frozen=True)
class ShardParams:
    """``shards``: how the snapshot is split into DVC ``foreach`` items."""

    batch_size: int = 10
    offsets: tuple[int, ...] = tuple(range(10))
    assign: str = "index"


@dataclass(frozen=True)
class IngestParams:
    """``ingest``: how each shard clones and digests its repos."""

    workers: int = 8
    max_file_size: int = 524288
    max_summary_bytes: int = 524288
    max_files: int = 10000
    max_total_bytes: int = 524288000
    clone_timeout: float = 300.0
    retries: int = 2
    max_failure_ratio: float = 0.5
    allowed_hosts: tuple[str, ...] = ("github.com",)
    allow_file_urls: bool = False
    cache: str = ".cache/digests"
    clone_filter: str = "auto"


@dataclass(frozen=True)
class PublishParams:
    """``publish``: where ``python -m stages.publish`` copies the digests under readable keys (not a DVC stage)."""

    bucket: str = ""  # "" = the bucket of the DVC remote 'r2'
    prefix: str = "summaries"


@dataclass(frozen=True)
class Params:
    """All stage parameters."""

    feed: FeedParams
    shards: ShardParams = field(default_factory=ShardParams)
    ingest: IngestParams = field(default_factory=IngestParams)
    publish: PublishParams = field(default_factory=PublishParams)


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
    params = Params(
        feed=_section(raw, "feed", FeedParams),
        shards=_section(raw, "shards", ShardParams),
        ingest=_section(raw, "ingest", IngestParams),
        publish=_section(raw, "publish", PublishParams),
    )
    _validate(params)
    return params


def _validate(p: Params) -> None:
    checks = [
        (isinstance(p.feed.limit, int) and p.feed.limit >= 0, "feed.limit must be an integer >= 0 (0 = all repos)"),
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
        (0 <= p.ingest.max_failure_ratio <= 1, "ingest.max_failure_ratio must be between 0 and 1"),
        (p.ingest.clone_timeout > 0, "ingest.clone_timeout must be > 0 seconds"),
        (isinstance(p.ingest.retries, int) and p.ingest.retries >= 0, "ingest.retries must be an integer >= 0"),
        (
            p.ingest.clone_filter in ("auto", "off"),
            "ingest.clone_filter must be 'auto' (fetch only the files a digest reads) or 'off' (full shallow clone)",
        ),
        (isinstance(p.publish.bucket, str), "publish.bucket must be a string ('' = the bucket of the 'r2' remote)"),
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


def update_params(path: Path, overrides: dict[str, dict[str, Any]]) -> None:
    """Set keys of ``params.yaml`` section by section, keeping its comments, order, flow lists and quoting."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long value such as the feed URL
    data = yaml.load(path.read_text(encoding="utf-8"))
    for section, values in overrides.items():
        for key, value in values.items():
            data[section][key] = value
    with path.open("w", encoding="utf-8") as fh:
        yaml.dump(data, fh)
