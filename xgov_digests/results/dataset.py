"""The consumers' dataset: every digested repo as one Parquet row (metadata, token count and the digest's text).

``data/dataset/part-<BBBB>.parquet``: a repo's row lives in bucket ``sha256(canonical URL) % BUCKETS``, whatever the
shard count, so its file name never moves. Read as one table by a glob (``data/dataset/*.parquet``) or the folder:
pandas, DuckDB, Polars and Hugging Face ``datasets`` alike. Each file is written whole from the rows in the same order
with the same library, so a bucket none of whose repos changed is byte-identical to last night's and DVC, which stores
and pushes by content, uploads it no more. Many small buckets keep a 1%-churn night's upload near 1% of the corpus
(see docs/dataset.md for the measurement); a bucket's rows are one row group, small enough to stream. Nothing in a
row tells tonight's clone from a digest-cache hit (both are ``status: ok``): a repo's row changes with its digest only.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from array import array
from concurrent.futures import ThreadPoolExecutor
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xgov_digests.core.errors import XgovError
from xgov_digests.core.files import SNAPSHOT, digest_path, summaries_path, write_atomic
from xgov_digests.core.repo import normalise_url

if TYPE_CHECKING:
    import pandas as pd

DATASET_DIR = Path("data/dataset")
BUCKETS = 4096
FINGERPRINT_KEY = b"xgov_digests.fingerprint"  # parquet metadata: what the file was written from
DIGESTED = ("ok", "cached")
# (column, arrow type name): the documented schema, in order
COLUMNS = [
    ("owner", "string"),
    ("name", "string"),
    ("url", "string"),
    ("commit", "string"),
    ("pushed_at", "string"),
    ("license", "string"),
    ("language", "string"),
    ("stars", "int64"),
    ("files", "int64"),
    ("bytes", "int64"),
    ("tokens", "int64"),
    ("truncated", "bool"),
    ("status", "string"),
    ("text", "string"),
]
# Dictionary-encoded columns: the short ones. Every text is distinct, so trying a dictionary on it only hashed and
# copied the texts before falling back to plain (about 10% of a bucket's write, measured at 21,000 rows).
DICTIONARY = [name for name, kind in COLUMNS if kind == "string" and name != "text"]
# How every bucket is written (part of its fingerprint: a change rewrites every bucket, so that the same rows give
# the same bytes on every machine); a bucket's rows are one row group.
WRITE_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "write_statistics": ["url", "owner"],
    "use_dictionary": DICTIONARY,
}


class DatasetError(XgovError, RuntimeError):
    """A digest cannot become a row: the message names the file and what to do."""


def bucket(url: str) -> int:
    return int.from_bytes(hashlib.sha256(normalise_url(url).encode()).digest()[:8], "big") % BUCKETS


def part_path(k: int, directory: Path = DATASET_DIR) -> Path:
    return directory / f"part-{k:04d}.parquet"


def _license(value: object) -> str | None:
    if isinstance(value, dict):  # GitHub's API shape: {"spdx_id": ..., "name": ...}
        value = value.get("spdx_id") or value.get("spdxId") or value.get("key") or value.get("name")
    return value if isinstance(value, str) and value else None


def metadata(snapshot: Path = SNAPSHOT) -> dict[str, dict[str, Any]]:
    """The snapshot's license, language and stars by canonical URL."""
    records = json.loads(snapshot.read_text(encoding="utf-8"))
    out = {}
    for r in records:
        stars = r.get("stargazersCount")
        out[normalise_url(str(r.get("url", "")))] = {
            "license": _license(r.get("license")),
            "language": r.get("language") if isinstance(r.get("language"), str) else None,
            "stars": stars if isinstance(stars, int) and not isinstance(stars, bool) else None,
        }
    return out


def _schema() -> Any:
    import pyarrow as pa

    kinds = {"string": pa.large_string(), "int64": pa.int64(), "bool": pa.bool_()}
    return pa.schema([(name, kinds[kind]) for name, kind in COLUMNS])


def _read(path: Path, sha256: object) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path} is missing: re-run its shard with 'dvc repro --force'") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise DatasetError(f"{path} is not the digest its stats row records: re-run its shard with 'dvc repro --force'")
    return data


def _digest_file(row: dict[str, Any]) -> Path:
    return digest_path(summaries_path(row["offset"]), row["owner"], row["name"])


def _texts(rows: list[dict[str, Any]]) -> Any:
    """The bucket's digests as one Arrow string array: read, checked against their rows' SHA-256, and checked as
    UTF-8 by Arrow's full validation (in C++, without the GIL, unlike a decode to Python strings); a file that is not
    UTF-8 is named.

    The array is assembled from its two buffers (the texts end to end, and their offsets) rather than by
    ``pa.array(list_of_bytes)``, whose builder appends value by value holding the GIL (1.4-1.8 s for 407 MB of
    digests in one array; 1-4 s of CPU over the 4,096 buckets of 21,000 digests)."""
    import pyarrow as pa

    paths = [_digest_file(row) for row in rows]
    data = [_read(path, row["sha256"]) for path, row in zip(paths, rows, strict=True)]
    offsets = array("q", [0])
    offsets.extend(accumulate(len(blob) for blob in data))
    texts = pa.LargeStringArray.from_buffers(len(data), pa.py_buffer(offsets), pa.py_buffer(b"".join(data)))
    try:
        texts.validate(full=True)  # UTF-8 included
    except pa.ArrowInvalid:
        for path, blob in zip(paths, data, strict=True):
            try:
                blob.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DatasetError(f"{path} is not UTF-8 ({exc}): re-run its shard with 'dvc repro --force'") from None
        raise
    return texts


def _fingerprint(rows: list[dict[str, Any]]) -> str:
    """What a bucket's file is made of: its rows' fields and texts' SHA-256, the schema, the write options and the
    writer's version."""
    import pyarrow as pa

    fields = [[row[name] for name, _ in COLUMNS if name != "text"] + [row["sha256"]] for row in rows]
    return hashlib.sha256(json.dumps([pa.__version__, COLUMNS, WRITE_OPTIONS, fields]).encode()).hexdigest()


def _current(path: Path) -> str | None:
    """The fingerprint a bucket file was written with (None when absent or unreadable)."""
    import pyarrow.parquet as pq

    try:
        return (pq.read_schema(path).metadata or {}).get(FINGERPRINT_KEY, b"").decode() or None
    except (OSError, ValueError):
        return None


def write_dataset(frame: pd.DataFrame, out_dir: Path = DATASET_DIR, snapshot: Path = SNAPSHOT) -> dict[str, int]:
    """Write one Parquet file per non-empty bucket of the ok and cached rows of a merged stats frame, and remove any
    other file in ``out_dir``. A bucket whose file was written from the same rows and texts (its fingerprint, in the
    file's metadata, says so) is kept without reading its digests: only the buckets holding a changed repo cost a
    read and a compression. Each text read is checked against its row's SHA-256. Returns the rows, files, files
    written and bytes."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = metadata(snapshot)
    done = frame[frame["status"].isin(DIGESTED)]
    groups: dict[int, list[dict[str, Any]]] = {}
    for r in done.itertuples(index=False):
        r = r._replace(**{k: None for k, v in r._asdict().items() if v is pd.NA})  # a null of a "string" column
        extra = meta.get(normalise_url(r.url), {})
        groups.setdefault(bucket(r.url), []).append(
            {
                "owner": r.owner,
                "name": r.name,
                "url": r.url,
                "commit": r.commit,
                "pushed_at": r.pushed_at,
                "license": extra.get("license"),
                "language": extra.get("language"),
                "stars": extra.get("stars"),
                "files": int(r.files),
                "bytes": int(r.digest_bytes),
                "tokens": int(r.tokens),
                "truncated": bool(r.truncated),
                "status": "ok",  # cloned tonight or from the cache: the same row
                "sha256": r.sha256,
                "offset": int(r.offset),  # where its digest is (read only when its bucket is written)
            }
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    schema = _schema()

    def write(k: int) -> tuple[str, int, bool]:
        """Bucket ``k``'s file name, size, and whether it was written (False: its fingerprint matched)."""
        rows = sorted(groups[k], key=lambda row: row["url"])
        path, fingerprint = part_path(k, out_dir), _fingerprint(rows)
        if _current(path) == fingerprint:
            return path.name, path.stat().st_size, False
        columns: dict[str, Any] = {name: [row[name] for row in rows] for name, _ in COLUMNS if name != "text"}
        columns["text"] = _texts(rows)
        table = pa.Table.from_pydict(columns, schema=schema.with_metadata({FINGERPRINT_KEY: fingerprint.encode()}))
        buffer = io.BytesIO()
        pq.write_table(table, buffer, row_group_size=len(rows), **WRITE_OPTIONS)
        write_atomic(path, buffer.getvalue())
        return path.name, len(buffer.getvalue()), True

    # Buckets are independent: reads, hashing, Arrow's UTF-8 check and zstd run without the GIL, so the buckets are
    # written on every core. Each file's bytes depend on its rows alone, never on the order the threads finish in.
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        files = list(pool.map(write, sorted(groups)))
    keep = {name for name, _, _ in files}
    total = sum(size for _, size, _ in files)
    rewritten = sum(1 for _, _, written in files if written)
    for stale in out_dir.iterdir():
        if stale.name not in keep:
            stale.unlink()
    return {"rows": len(done), "files": len(keep), "written": rewritten, "bytes": total}
