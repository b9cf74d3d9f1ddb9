"""Disk full, named: a real full filesystem (a tiny tmpfs) under TMPDIR or under the shard's output folder.

The shard exits 1 with one line saying "disk full" and the path, records no row (not ``transient``, not
``internal``), prints no traceback and leaves no temp file behind.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Workspace, write_feed
from tests.fixtures.sample import build_corpus

pytestmark = pytest.mark.slow


@pytest.fixture
def tiny(tmp_path: Path) -> Iterator[Path]:
    """A 32 KiB tmpfs: real ENOSPC from the kernel (needs the right to mount, as root in the CI container)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def shard(ws: Workspace, feed: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return ws.run(
        sys.executable,
        "-m",
        "stages.shard",
        "--batch-size",
        "1",
        "--offset",
        "0",
        "--feed",
        str(feed),
        check=False,
        env=env,
    )


def assert_named(result: subprocess.CompletedProcess[str], where: Path) -> None:
    assert result.returncode == 1, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("shard: error:")]
    assert len(lines) == 1 and "disk full: no space left on device" in lines[0] and str(where) in lines[0], lines
    assert "Traceback" not in result.stderr
    assert "internal error" not in result.stderr  # not a bug
    assert "transient" not in lines[0] and "network" not in lines[0]  # not a network failure: no row records it


def test_tmpdir_full_stops_the_shard_naming_it(workspace_factory, tmp_path: Path, tiny: Path) -> None:
    feed = write_feed(tmp_path / "feed.json", build_corpus(tmp_path / "corpus", 4))
    ws = workspace_factory(str(feed))
    (tiny / "filler").write_bytes(b"x" * 24 * 1024)
    result = shard(ws, feed, env={"TMPDIR": str(tiny)})
    assert_named(result, tiny)
    assert sorted(p.name for p in tiny.iterdir()) == ["filler"]  # no clone folder left behind
    assert not (ws.path / "data" / "stats" / "shard-0.parquet").exists()  # nothing recorded


def test_output_folder_full_stops_the_shard_naming_it(workspace_factory, tmp_path: Path, tiny: Path) -> None:
    feed = write_feed(tmp_path / "feed.json", build_corpus(tmp_path / "corpus", 4))
    ws = workspace_factory(str(feed))
    out = ws.path / "data" / "summaries"
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "--bind", str(tiny), str(out)], check=True)
    try:
        (out / "filler").write_bytes(b"x" * 28 * 1024)
        result = shard(ws, feed)
        assert_named(result, out)
        assert not (ws.path / "data" / "stats" / "shard-0.parquet").exists()
        assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # no temp file left
    finally:
        subprocess.run(["umount", "-l", str(out)], check=False)
