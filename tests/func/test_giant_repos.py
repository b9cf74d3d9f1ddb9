"""Giant repositories: the walk is cut off by ingest.max_files / ingest.max_total_bytes, reading stops at the digest
cap, and a shard's whole process tree stays under 1 GB whatever one repo contains."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psutil
import pytest

from tests.conftest import write_feed

pytestmark = pytest.mark.slow


def fast_import(path: Path, files: Iterator[tuple[str, bytes]]) -> None:
    """A one-commit repository written with git fast-import (no working tree is ever created here)."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    proc = subprocess.Popen(["git", "-C", str(path), "fast-import", "--quiet"], stdin=subprocess.PIPE)
    assert proc.stdin
    names = []
    for mark, (name, data) in enumerate(files, start=1):
        proc.stdin.write(b"blob\nmark :%d\ndata %d\n" % (mark, len(data)) + data + b"\n")
        names.append(name)
    proc.stdin.write(b"commit refs/heads/main\ncommitter T <t@example.invalid> 1700000000 +0000\ndata 5\ngiant\n")
    for mark, name in enumerate(names, start=1):
        proc.stdin.write(b"M 100644 :%d %s\n" % (mark, name.encode()))
    proc.stdin.close()
    assert proc.wait() == 0


def peak_tree_rss(proc: subprocess.Popen, stop: threading.Event, out: list[int]) -> None:
    root = psutil.Process(proc.pid)
    while not stop.is_set():
        try:
            procs = [root, *root.children(recursive=True)]
            out.append(sum(p.memory_info().rss for p in procs if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.02)


def test_giant_repos_are_bounded(workspace_factory, tmp_path: Path) -> None:
    repos = tmp_path / "repos"
    fast_import(repos / "many", ((f"d{i // 1000:02d}/f{i:05d}.txt", b"%d\n" % i) for i in range(50_000)))
    chunk = os.urandom(150_000).hex().encode()  # 300 kB of text, under max_file_size
    fast_import(repos / "huge", ((f"part{i:03d}.txt", chunk[i:] + chunk[:i]) for i in range(700)))  # 210 MB
    entries = [
        {"owner": "giant", "name": n, "url": (repos / n).as_uri(), "pushedAt": "2024-01-01T00:00:00Z"}
        for n in ("many", "huge")
    ]
    feed = write_feed(tmp_path / "feed.json", entries)
    ws = workspace_factory(str(feed), max_files=2_000, max_total_bytes=20_000_000)
    ws.set_params(shards={"batch_size": 1, "offsets": [0]})

    stop, samples = threading.Event(), []
    proc = subprocess.Popen(
        [os.sys.executable, "-m", "stages.shard", "--batch-size", "1", "--offset", "0", "--feed", str(feed)],
        cwd=ws.path,
        env=ws.env,
        stderr=subprocess.PIPE,
        text=True,
    )
    sampler = threading.Thread(target=peak_tree_rss, args=(proc, stop, samples))
    sampler.start()
    _, stderr = proc.communicate(timeout=600)
    stop.set()
    sampler.join()
    assert proc.returncode == 0, stderr

    rows = pd.read_parquet(ws.path / "data/stats/shard-0.parquet").set_index("name")
    assert set(rows["status"]) == {"ok"}
    assert rows.loc["many", "files"] == 2_000  # the walk stopped at ingest.max_files
    assert rows.loc["huge", "files"] == 20_000_000 // 300_000  # ... and at ingest.max_total_bytes
    assert rows.loc["huge", "truncated"] and (rows["digest_bytes"] <= 524288).all()
    print(f"peak RSS of the shard process tree: {max(samples) / 1024**2:.0f} MB")
    assert max(samples) < 1024**3, f"peak RSS of the shard's process tree: {max(samples) / 1024**2:.0f} MB"
