"""The per-repo stats schema: one row per assigned repo, one parquet file per shard.

A shard writes its file with pyarrow alone, and publish reads rows with pyarrow alone; pandas (about half a second
of imports) is loaded only where a frame is read (aggregate, retry).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from xgov_digests.core.files import STATS_DIR, write_atomic

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Row:
    """What happened to one repo in one shard run."""

    url: str
    owner: str
    name: str
    offset: int
    batch_size: int
    pushed_at: str | None
    status: str = "failed"
    error: str | None = None
    failure_kind: str | None = None  # failed rows: transient | permanent | internal
    commit: str | None = None
    files: int = 0
    digest_bytes: int = 0
    truncated: bool = False
    clone_s: float = 0.0
    digest_s: float = 0.0
    total_s: float = 0.0
    walk_limit: str | None = None  # the limit that stopped the checkout's walk early, if any
    warnings: str | None = None  # what the digest had to work around (e.g. an undecodable ignore file)
    tokens: int = 0  # the digest's tokens in ingest.token_encoding (xgov_digests/digest/tokens.py); 0 without one
    sha256: str | None = None  # of the digest file's bytes (the dataset is rebuilt where it changed)


COLUMNS = [f.name for f in fields(Row)]
WALL_KEY = b"xgov_digests.wall_s"  # parquet metadata key: the shard's wall time in seconds
DTYPES = {
    "url": "string",
    "owner": "string",
    "name": "string",
    "offset": "int64",
    "batch_size": "int64",
    "pushed_at": "string",
    "status": "string",
    "error": "string",
    "failure_kind": "string",
    "commit": "string",
    "files": "int64",
    "digest_bytes": "int64",
    "truncated": "bool",
    "clone_s": "float64",
    "digest_s": "float64",
    "total_s": "float64",
    "walk_limit": "string",
    "warnings": "string",
    "tokens": "int64",
    "sha256": "string",
}


def stats_path(offset: int, directory: Path = STATS_DIR) -> Path:
    return directory / f"shard-{offset}.parquet"


def to_frame(rows: list[Row]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame([asdict(r) for r in rows], columns=COLUMNS)
    return frame.astype(DTYPES)


def _schema() -> object:
    import pyarrow as pa

    kinds = {"string": pa.large_string(), "int64": pa.int64(), "bool": pa.bool_(), "float64": pa.float64()}
    return pa.schema([(name, kinds[DTYPES[name]]) for name in COLUMNS])


def load_writer() -> None:
    """Import what :func:`write_stats` needs (pyarrow, its JSON reader and Parquet writer: about 0.2 s of CPU). A
    shard calls this in a background thread as it starts, so the import overlaps its clones instead of following its
    last repo: under plain ``dvc repro`` the shards run one after another, and each such tail is the run's wall
    time. A failure here is met again, and reported, by :func:`write_stats`."""
    with contextlib.suppress(Exception):
        import pyarrow.json  # noqa: F401
        import pyarrow.parquet  # noqa: F401


def write_stats(path: Path, rows: list[Row], wall_s: float | None = None) -> None:
    """Write rows (sorted by URL, so row order never depends on completion order) atomically; ``wall_s``, the shard's
    wall time, goes in the file's metadata. The columns have the types pandas gives :data:`DTYPES`. The table is
    parsed from JSON lines by pyarrow's reader: building it from Python lists would make pyarrow import pandas."""
    import pyarrow as pa
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    schema = _schema()
    ordered = sorted(rows, key=lambda r: r.url.lower())
    if ordered:
        # vars(): the fields in their order, as asdict() gives them less its deep copy (every field is a scalar):
        # half of write_stats' time on a 2,100-row shard
        lines = "".join(json.dumps(vars(r)) + "\n" for r in ordered).encode("utf-8")
        options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
        table = pj.read_json(
            pa.BufferReader(lines), parse_options=options, read_options=pj.ReadOptions(block_size=len(lines) + 1)
        ).select(COLUMNS)
    else:
        table = pa.Table.from_batches([], schema=schema)  # (schema.empty_table() imports pandas)
    if wall_s is not None:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), WALL_KEY: f"{wall_s:.3f}".encode()})
    out = pa.BufferOutputStream()
    pq.write_table(table, out)
    write_atomic(path, out.getvalue().to_pybytes())


def wall_seconds(path: Path) -> float | None:
    """The shard's wall time recorded by :func:`write_stats`, if any."""
    import pyarrow.parquet as pq

    value = (pq.read_schema(path).metadata or {}).get(WALL_KEY)
    return float(value) if value is not None else None


def _check_columns(path: Path, names: list[str]) -> None:
    missing = sorted(set(COLUMNS) - set(names))
    if missing:
        raise ValueError(f"{path} lacks columns {missing}: it was written by another version; re-run its shard")


def read_stats(path: Path) -> pd.DataFrame:
    import pandas as pd

    frame = pd.read_parquet(path)
    _check_columns(path, list(frame.columns))
    return frame[COLUMNS].astype(DTYPES)


def read_rows(path: Path, columns: list[str], required: tuple[str, ...] = ()) -> list[dict[str, object]]:
    """``columns`` of a stats file, one dict per row (nulls as None), read by pyarrow alone: a command that only
    walks the rows (publish) starts without pandas' half second of imports. Raises ValueError like read_stats, and
    when a ``required`` column holds a null."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as file:  # (pq.read_table goes through pyarrow.dataset, which imports pandas)
        _check_columns(path, file.schema_arrow.names)
        table = file.read(columns=columns)
    nulls = [name for name in required if table.column(name).null_count]
    if nulls:
        raise ValueError(f"{path} has rows without {nulls}: re-run 'dvc repro' (or 'dvc pull') to rewrite it")
    return table.to_pylist()


def failed_shards(frame: pd.DataFrame) -> list[str]:
    """The shard stages (``shard@K``) that hold failed repos in a merged stats frame."""
    return [f"shard@{k}" for k in sorted(set(frame.loc[frame["status"] == "failed", "offset"]))]
