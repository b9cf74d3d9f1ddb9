"""Every digest the metrics count is a file DVC tracks, pushes and pulls; temp files and file permissions."""

from __future__ import annotations

import json
import os
import stat
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import Workspace, write_feed
from tests.fixtures.sample import build_corpus
from xgov_digests.core.files import TEMP_MARK, files_under, write_atomic
from xgov_digests.core.repo import Repo
from xgov_digests.feed.manifest import manifest_path, write_manifest

SPECIAL = [".git", ".hg", ".dvc", ".dvcignore", ".GIT", ".Dvc"]


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def digests(path: Path) -> dict[Path, bytes]:
    root = path / "data/summaries"
    return {p: (root / p).read_bytes() for p in files_under(root) if p.parts[0].startswith("shard-")}


@pytest.mark.slow
def test_special_owners_never_hide_a_digest_from_dvc(workspace_factory, tmp_path: Path) -> None:
    """Owners and names DVC or git treat specially are dropped by fetch; push, a fresh clone and pull restore every
    digest the metrics count."""
    entries = build_corpus(tmp_path / "corpus", 4 + len(SPECIAL))
    special = [dict(e, owner=owner) for e, owner in zip(entries[4:], SPECIAL, strict=True)]
    special.append(dict(entries[0], name=".dvcignore", url=entries[0]["url"].rsplit("/", 1)[0] + "/.dvcignore"))
    feed = write_feed(tmp_path / "feed.json", entries[:4] + special)
    ws = workspace_factory(str(feed))
    ws.set_params(shards={"batch_size": 2, "offsets": [0, 1]})
    ws.dvc("remote", "add", "-d", "shared", str(tmp_path / "remote"))
    ws.commit("remote")
    result = ws.dvc("repro")
    drops = [json.loads(line) for line in result.stderr.splitlines() if "dropping feed entry" in line]
    assert len(drops) == len(special) and all("DVC or git treat specially" in d["reason"] for d in drops)
    ws.dvc("push")
    ws.commit("run")
    metrics = json.loads((ws.path / "reports/metrics.json").read_text())
    assert metrics["ok"] + metrics["cached"] == 4

    clone = Workspace(tmp_path / "clone", ws.env)
    ws.run("git", "clone", "-q", str(ws.path), str(clone.path))
    clone.dvc("pull")
    assert len(digests(clone.path)) == metrics["ok"] + metrics["cached"]
    assert digests(clone.path) == digests(ws.path)


@pytest.mark.slow
def test_aggregate_checks_digests_on_disk_against_the_rows(workspace_factory, tmp_path: Path) -> None:
    entries = build_corpus(tmp_path / "corpus", 3)
    feed = write_feed(tmp_path / "feed.json", entries)
    ws = workspace_factory(str(feed))
    ws.set_params(shards={"batch_size": 1, "offsets": [0]})
    ws.python("-m", "stages.fetch")
    ws.python("-m", "stages.shard", "--batch-size", "1", "--offset", "0")
    ws.python("-m", "stages.aggregate")
    shard_dir = ws.path / "data/summaries/shard-0"
    first = sorted(files_under(shard_dir))[0]

    (shard_dir / first).rename(tmp_path / "kept.txt")  # a digest the stats count is missing
    result = ws.python("-m", "stages.aggregate", check=False)
    assert result.returncode == 2 and f"1 ok/cached repo(s) have no digest file, e.g. {first}" in result.stderr
    (tmp_path / "kept.txt").rename(shard_dir / first)

    (shard_dir / "org0/stray.txt").write_text("no row names me\n")  # a file no row accounts for
    result = ws.python("-m", "stages.aggregate", check=False)
    assert result.returncode == 2 and "1 file(s) are no ok/cached repo's digest, e.g. org0/stray.txt" in result.stderr
    (shard_dir / "org0/stray.txt").unlink()

    # A manifest that did not come from fetch names an owner DVC skips: the digest is on disk but DVC would not
    # track it, and aggregate says so instead of writing metrics that count it.
    e = entries[0]
    write_manifest(
        manifest_path(0, ws.path / "data/manifests"), 1, 0, "index", [Repo(e["url"], ".git", e["name"], e["pushedAt"])]
    )
    ws.python("-m", "stages.shard", "--batch-size", "1", "--offset", "0")
    assert (shard_dir / ".git" / f"{e['name']}.txt").is_file()
    result = ws.python("-m", "stages.aggregate", check=False)
    assert result.returncode == 2 and "lie in folders DVC ignores, e.g. .git/" in result.stderr


@pytest.mark.slow
def test_temp_files_and_permissions(workspace_factory, tmp_path: Path) -> None:
    """Owners and names that look like temp files are digested and never removed; a killed run's temp file is;
    every output gets the permissions the umask gives."""
    entries = build_corpus(tmp_path / "corpus", 3)
    entries[0]["owner"] = ".x.tmp"
    (tmp_path / "corpus/repos/org1/project-001").rename(tmp_path / "corpus/repos/org1/.y.tmp")
    entries[1].update(name=".y.tmp", url=(tmp_path / "corpus/repos/org1/.y.tmp").as_uri())
    feed = write_feed(tmp_path / "feed.json", entries)
    ws = workspace_factory(str(feed))
    ws.set_params(shards={"batch_size": 1, "offsets": [0]})
    ws.commit("one shard")
    with umask(0o022):
        ws.dvc("repro")
    shard_dir = ws.path / "data/summaries/shard-0"
    expected = {Path(".x.tmp/project-000.txt"), Path("org1/.y.tmp.txt"), Path("org2/project-002.txt")}
    assert set(files_under(shard_dir)) == expected

    stale = shard_dir / ".x.tmp" / f"{TEMP_MARK}0123456789abcdef.tmp"  # what a killed run leaves behind
    stale.write_bytes(b"half a digest")
    for mask in (0o022, 0o077):
        with umask(mask):
            for _ in range(2 if mask == 0o022 else 1):  # the standalone shard, twice over the same folder
                ws.python("-m", "stages.shard", "--batch-size", "1", "--offset", "0")
            ws.python("-m", "stages.aggregate")
            ws.python("-m", "stages.fetch")
        assert set(files_under(shard_dir)) == expected
        outputs = [
            ws.path / "data/repos.json",
            ws.path / "data/manifests/shard-0.json",
            ws.path / "data/stats.parquet",
            ws.path / "data/stats/shard-0.parquet",
            ws.path / "reports/report.md",
            *(shard_dir / p for p in expected),
        ]
        modes = {p.relative_to(ws.path).as_posix(): oct(stat.S_IMODE(p.stat().st_mode)) for p in outputs}
        assert set(modes.values()) == {oct(0o666 & ~mask)}, modes


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_write_atomic_honours_the_umask(tmp_path: Path, mask: int) -> None:
    with umask(mask):
        write_atomic(tmp_path / "a" / "out.txt", b"x")
    assert stat.S_IMODE((tmp_path / "a/out.txt").stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["out.txt"]
