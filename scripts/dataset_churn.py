"""The share of the dataset's bytes a 1%-churn night uploads, by layout: DVC uploads only files whose bytes changed.

21,000 rows, 210 of them changed (chosen at random, as a night's pushes are), each text a 4 KB slice of a real digest
from FOLDER (any folder holding ``summaries/**.txt``, e.g. a bench workspace) made unique per repo. Layouts: one
table, one file per shard (10 shards), and 256 / 1,024 / 4,096 URL-hash buckets (xgov_digests.results.dataset).

    .venv/bin/python -m scripts.dataset_churn bench/work/throughput
"""

from __future__ import annotations

import hashlib
import io
import random
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from xgov_digests.results.dataset import bucket

ROWS, CHURN = 21_000, 210


def main(folder: Path) -> None:
    digests = [p.read_text(encoding="utf-8") for p in sorted(folder.rglob("*.txt")) if "summaries" in p.parts]
    if not digests:
        sys.exit(f"no summaries/**.txt under {folder}: run a bench first (python -m bench throughput --repos 40)")
    urls = [f"https://github.com/org{i % 300}/repo-{i:05d}" for i in range(ROWS)]
    changed = set(random.Random(7).sample(range(ROWS), CHURN))

    def text(i: int, night: int) -> str:
        d = digests[i % len(digests)]
        start = (i * 977) % max(1, len(d) - 4096)
        return f"repo {urls[i]} night {night}\n" + d[start : start + 4096]

    def files(layout: str | int, night: int) -> dict[int, bytes]:
        groups: dict[int, list[int]] = {}
        for i, url in enumerate(urls):
            if layout == "one table":
                key = 0
            elif layout == "per shard":
                key = int(hashlib.sha256(url.encode()).hexdigest(), 16) % 10
            else:
                key = bucket(url) % int(layout)
            groups.setdefault(key, []).append(i)
        out = {}
        for key, rows in groups.items():
            table = pa.table(
                {"url": [urls[i] for i in rows], "text": [text(i, night if i in changed else 1) for i in rows]}
            )
            buffer = io.BytesIO()
            pq.write_table(table, buffer, compression="zstd")
            out[key] = buffer.getvalue()
        return out

    for layout in ("one table", "per shard", 256, 1024, 4096):
        before, after = files(layout, 1), files(layout, 2)
        total = sum(map(len, after.values()))
        uploaded = sum(len(v) for k, v in after.items() if before.get(k) != v)
        print(
            f"{layout!s:>9}: {len(after):5d} files, {total / 1e6:6.1f} MB, a 1%-churn night uploads "
            f"{uploaded / 1e6:6.1f} MB = {uploaded / total:6.1%}"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "bench/work/throughput"))
