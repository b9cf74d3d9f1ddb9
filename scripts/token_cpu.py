"""CPU time of the token count: loading the vocabulary, and counting each digest under FOLDER (``summaries/**.txt``,
e.g. a bench workspace), three passes, process CPU time.

    .venv/bin/python -m scripts.token_cpu bench/work/throughput
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from xgov_digests.digest.tokens import count_tokens, encoder


def main(folder: Path, name: str = "o200k_base") -> None:
    files = sorted({p.name: p for p in folder.rglob("*.txt") if "summaries" in p.parts}.values())
    if not files:
        sys.exit(f"no summaries/**.txt under {folder}: run a bench first (python -m bench throughput --repos 40)")
    start = time.process_time()
    encoder(name)
    load = time.process_time() - start
    datas = [f.read_bytes() for f in files]
    per: list[tuple[int, float]] = []
    for _ in range(3):
        for data in datas:
            start = time.process_time()
            count_tokens(data, name)
            per.append((len(data), time.process_time() - start))
    cpu = [c for _, c in per]
    print(
        f"{len(datas)} digests, mean {statistics.mean(n for n, _ in per) / 1024:.1f} KB; {name} vocabulary load: "
        f"{load:.3f} s of CPU"
    )
    print(
        f"CPU per digest: mean {statistics.mean(cpu) * 1000:.2f} ms, median {statistics.median(cpu) * 1000:.2f} ms, "
        f"max {max(cpu) * 1000:.2f} ms"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "bench/work/throughput"))
