"""Bounded checkouts: a tree bomb costs one bounded listing and fails the repo; an oversized blob named by many
paths is never written; a broken pack is permanent in every git step; attributes that shrink a file on checkout
give ``auto`` the same digest as ``off`` (a property test over random trees and ``.gitattributes``)."""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tests.fixtures.bombs import bare_repo, blob_bomb, commit_tree, git_object, git_tree, tree_bomb
from tests.fixtures.gitserver import GitServer, Reply, Request
from tests.fixtures.sample import git, make_repo
from tests.fixtures.served import HEADER, Served, assert_identical, publish
from xgov_digests.clone.git import CloneError
from xgov_digests.clone.strategy import clone_repo
from xgov_digests.core.params import CloneSettings
from xgov_digests.digest.build import make_digest

MAX = 1000


def _du(path: Path) -> int:
    """Bytes of the files under ``path``; files that git removes while they are counted count as 0."""
    total = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


@pytest.mark.parametrize("mode", ["off", "auto"])
def test_tree_bomb_fails_in_seconds_and_writes_nothing(tmp_path: Path, mode: str) -> None:
    paths = tree_bomb(bare_repo(tmp_path / "srv" / "org" / "bomb"), 18)  # 131,072 paths; minutes to check out
    with GitServer(tmp_path / "srv", lifetime=120) as server:
        start = time.monotonic()
        with pytest.raises(CloneError, match="ingest.max_tree_entries") as failed:
            clone_repo(
                f"{server.url}org/bomb",
                tmp_path / "c" / "bomb",
                CloneSettings(clone_filter=mode, clone_timeout=60, max_tree_entries=5000),
            )
        took = time.monotonic() - start
    assert failed.value.kind == "permanent" and paths > 100_000
    assert took < 15, f"{took:.1f}s"
    assert [p.name for p in (tmp_path / "c" / "bomb").iterdir()] == [".git"]  # nothing checked out


@pytest.mark.parametrize("mode", ["off", "auto"])
@pytest.mark.parametrize("attributes", ["", "x/bomb* ident\n"])
def test_oversized_blob_named_many_times_is_never_written(tmp_path: Path, mode: str, attributes: str) -> None:
    size, names = 16 << 20, 16  # 256 MiB of files if checked out
    blob_bomb(bare_repo(tmp_path / "srv" / "org" / "bomb"), size, names, attributes)
    with GitServer(tmp_path / "srv", lifetime=120) as server:
        checkout = clone_repo(
            f"{server.url}org/bomb",
            tmp_path / "c" / "bomb",
            CloneSettings(clone_filter=mode, clone_timeout=60, max_file_size=MAX),
        )
    written = _du(checkout.path)
    assert written < 2 << 20, written  # the pack of zeros, and the small files
    assert not any((checkout.path / "x").glob("bomb*")) and (checkout.path / "x" / "a.py").exists()
    data = make_digest(checkout.path, HEADER, max_file_size=MAX, max_summary_bytes=10**6).data
    assert b"FILE: x/a.py" in data and b"bomb0" not in data


def singles_bomb(repo: Path, sizes: dict[str, int]) -> None:
    """Random (incompressible) blobs of ``sizes`` at the root, beside ``a.py`` and an ignored file: the root is
    only partly kept, so ``auto`` asks for its files one by one, by name."""
    root = [
        ("100644", "a.py", git_object(repo, "blob", b"a = 1\n")),
        ("100644", "package-lock.json", git_object(repo, "blob", b"{}\n")),
    ]
    for i, (name, size) in enumerate(sorted(sizes.items())):
        root.append(("100644", name, git_object(repo, "blob", random.Random(i).randbytes(size))))
    commit_tree(repo, git_tree(repo, root))


@pytest.mark.slow
def test_oversized_blob_asked_for_by_name_is_not_downloaded(tmp_path: Path) -> None:
    """A server sends a blob asked for by name whatever its size: the download stops once it passes what the
    blobs asked for could weigh under ``max_file_size``, and the oversized ones are found by halving."""
    sizes = {f"s{i}.txt": 300 for i in range(9)} | {"big1.txt": 8 << 20, "big2.txt": 8 << 20}
    singles_bomb(bare_repo(tmp_path / "srv" / "org" / "bomb"), sizes)
    # Each fetch is stopped by a look at the pack fifty times a second: what passes before git dies is the
    # bandwidth times that look's delay, which a loaded machine stretches. The halving stops 9 fetches (at 8 MiB/s:
    # 1.9 MiB sent on an idle machine, 4.6 MiB during a whole test run); at 2 MiB/s the bound leaves each ~200 ms.
    with GitServer(tmp_path / "srv", lifetime=120, bandwidth=2 << 20) as server:  # 16 MiB would take 8 s
        start = time.monotonic()
        checkout = clone_repo(
            f"{server.url}org/bomb",
            tmp_path / "c" / "bomb",
            CloneSettings(clone_filter="auto", clone_timeout=60, max_file_size=MAX),
        )
        took, sent = time.monotonic() - start, server.bytes_sent
    with GitServer(tmp_path / "srv", lifetime=120) as server:  # the whole repo, for the digest to compare with
        full = clone_repo(
            f"{server.url}org/bomb",
            tmp_path / "off" / "bomb",
            CloneSettings(clone_filter="off", clone_timeout=60, max_file_size=MAX),
        )
    digests = [make_digest(c.path, HEADER, max_file_size=MAX, max_summary_bytes=10**6).data for c in (checkout, full)]
    assert digests[0] == digests[1]
    on_disk = sorted(p.name for p in checkout.path.iterdir() if p.name != ".git")
    assert on_disk == ["a.py", *sorted(n for n in sizes if n.startswith("s"))], on_disk
    print(f"oversized blobs by name: {sent} bytes sent in {took:.2f}s")
    assert sent < 4 << 20, f"{sent} bytes sent for {2 * (8 << 20)} bytes of oversized blobs"
    assert took < 60, f"{took:.1f}s"  # a few git fetches: the halving
    assert not [p for p in (checkout.path / ".git" / "objects" / "pack").iterdir() if p.name.startswith("tmp_")]


def _files_bomb(repo: Path, files: int, size: int, compressible: bool) -> None:
    """``files`` blobs of ``size`` bytes, each under ``max_file_size``: small packs when ``compressible``."""
    rng = random.Random(files)
    blobs = [
        (
            "100644",
            f"f{i}.txt",
            git_object(
                repo,
                "blob",
                (f"{i:08d}\n" * (size // 9) if compressible else rng.randbytes(size).hex()[:size]).encode(),
            ),
        )
        for i in range(files)
    ]
    commit_tree(repo, git_tree(repo, [("40000", "src", git_tree(repo, blobs))]))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["off", "auto"])
@pytest.mark.parametrize("compressible", [False, True])
def test_repo_over_max_repo_bytes_fails_and_stays_bounded(tmp_path: Path, mode: str, compressible: bool) -> None:
    """Many files each under ``max_file_size``: the download (incompressible) or the checkout (compressible: a
    small pack, many bytes on disk) would pass ``max_repo_bytes``; the repo fails, having used about that much."""
    limit = 2 << 20
    _files_bomb(bare_repo(tmp_path / "srv" / "org" / "bomb"), 64, 100_000, compressible)  # 6.4 MB checked out
    peak = [0]
    dest = tmp_path / "c" / "bomb"
    # git is stopped by a look fifty times a second: at 2 MiB/s the 1 MiB of slack below is 500 ms of that look's
    # delay, which a loaded machine stretches.
    with GitServer(tmp_path / "srv", lifetime=120, bandwidth=2 << 20) as server:
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.02):
                peak[0] = max(peak[0], _du(dest) if dest.exists() else 0)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            with pytest.raises(CloneError, match="ingest.max_repo_bytes") as failed:
                clone_repo(
                    f"{server.url}org/bomb",
                    dest,
                    CloneSettings(clone_filter=mode, clone_timeout=60, max_repo_bytes=limit),
                )
        finally:
            done.set()
            sampler.join()
    assert failed.value.kind == "permanent"
    print(f"max_repo_bytes {limit}, {mode}, compressible={compressible}: peak {peak[0]} bytes under the clone")
    assert peak[0] < limit + (1 << 20), f"{peak[0]} bytes under the clone"
    assert not (dest / "src").exists()  # nothing checked out


@pytest.mark.slow
def test_repo_under_max_repo_bytes_is_checked_out_whole(tmp_path: Path) -> None:
    """The same files under a limit they fit: every mode checks them all out, as before."""
    _files_bomb(bare_repo(tmp_path / "srv" / "org" / "repo"), 16, 100_000, False)
    with GitServer(tmp_path / "srv", lifetime=120) as server:
        for mode in ("off", "auto"):
            checkout = clone_repo(
                f"{server.url}org/repo",
                tmp_path / mode / "repo",
                CloneSettings(clone_filter=mode, clone_timeout=60, max_repo_bytes=8 << 20),
            )
            assert len(list((checkout.path / "src").iterdir())) == 16, mode


class CorruptsPacks(GitServer):
    """Flips bytes in the middle of every pack from the ``first``-th on (a complete answer, a broken pack)."""

    first = 1
    packs = 0

    def after(self, request: Request, reply: Reply) -> Reply:
        if request.method != "POST" or b"PACK" not in reply.payload:
            return reply
        with self.lock:
            self.packs += 1
            if self.packs < self.first:
                return reply
        start = reply.payload.index(b"PACK") + 12
        mid = start + (len(reply.payload) - start) // 2
        body = bytearray(reply.payload)
        for i in range(mid, min(mid + 8, len(body) - 8)):
            body[i] ^= 0x5A
        return replace(reply, payload=bytes(body))


@pytest.mark.parametrize(("mode", "first"), [("off", 1), ("auto", 2)])
def test_broken_pack_is_permanent_in_every_git_step(tmp_path: Path, mode: str, first: int) -> None:
    """``off`` meets the broken pack in the clone, ``auto`` in the partial checkout's fetch: both are permanent."""
    make_repo(tmp_path / "src", {f"f{i}.txt": random.Random(i).randbytes(4000).hex() for i in range(8)})
    publish(tmp_path / "src", tmp_path / "srv")
    with CorruptsPacks(tmp_path / "srv", lifetime=120) as server:
        server.first = first
        with pytest.raises(CloneError) as failed:
            clone_repo(
                f"{server.url}org/repo",
                tmp_path / "c" / "repo",
                CloneSettings(clone_filter=mode, clone_timeout=60, retries=1, backoff=0.1),
            )
    assert failed.value.kind == "permanent", str(failed.value)


def test_ident_blob_over_max_file_size_is_digested_in_both_modes(served: Served, tmp_path: Path) -> None:  # noqa: F811
    """An ``ident`` blob of 3 kB collapses to one line on checkout: ``off`` and ``auto`` both digest it."""
    files = {".gitattributes": "*.c ident\n", "kept.c": "$Id: " + "x" * 3000 + " $\n", "pad.c": "int a;\n"}
    make_repo(tmp_path / "src", files)
    publish(tmp_path / "src", served.root)
    assert_identical(served, "org/repo", tmp_path / "c", max_file_size=MAX)
    checkout = clone_repo(
        f"{served.filtering.url}org/repo", tmp_path / "one" / "repo", CloneSettings(clone_timeout=60, max_file_size=MAX)
    )
    assert (checkout.path / "kept.c").read_text().startswith("$Id: ") and (checkout.path / "kept.c").stat().st_size < 60


ATTRIBUTE_LINES = [
    "*.txt ident",
    "*.txt text eol=crlf",
    "*.md text eol=lf",
    "* text=auto",
    "*.dat -text",
    "*.c crlf",
    "*.u16 working-tree-encoding=UTF-16LE",
    "*.u16 text",
    "*.bin binary",
    "*.txt export-subst",
    "* filter=lfs",
    "*.md ident",
    "docs/** eol=crlf",
    "*.c -ident",
    "*.dat filter=none",
    "*.py linguist-vendored",
]


def _random_tree(rng: random.Random) -> dict[str, str | bytes]:
    """Files around MAX in size whose checkout may grow (CRLF, $Id$) or shrink ($Id: ... $, UTF-16 of CJK)."""
    files: dict[str, str | bytes] = {}
    for i in range(rng.randint(4, 10)):
        folder = rng.choice(["", "docs/", "src/", "node_modules/p/", "docs/deep/"])
        ext = rng.choice([".txt", ".md", ".c", ".u16", ".dat", ".bin", ".py"])
        size = rng.choice([50, MAX // 2, MAX - 20, MAX, MAX + 30, 2 * MAX, 3 * MAX])
        unit = rng.choice(["line\n", "line\r\n", "$Id$\n", "中文字\n"])
        body = (unit * (size // len(unit.encode()) + 1)).encode()[:size]
        if rng.random() < 0.3:
            body = b"$Id: " + b"y" * size + b" $\n"
        files[f"{folder}f{i}{ext}"] = body
    return files


@pytest.mark.parametrize("seed", range(8))
def test_auto_equals_off_over_random_trees_and_attributes(served: Served, tmp_path: Path, seed: int) -> None:  # noqa: F811
    rng = random.Random(seed)
    src = tmp_path / "src"
    make_repo(src, _random_tree(rng))  # the blobs as written: .gitattributes comes in the next commit
    attributes = {".gitattributes": "\n".join(rng.sample(ATTRIBUTE_LINES, rng.randint(1, 5))) + "\n"}
    if rng.random() < 0.5:
        attributes["docs/.gitattributes"] = "\n".join(rng.sample(ATTRIBUTE_LINES, 2)) + "\n"
    for rel, text in attributes.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
        git(src, "add", "--", rel)
    git(src, "commit", "-q", "-m", "attributes")
    publish(src, served.root)
    assert_identical(served, "org/repo", tmp_path / "c", max_file_size=MAX)


def test_tree_listing_reads_non_utf8_names_with_nul_separators(served: Served, tmp_path: Path) -> None:  # noqa: F811
    """Names that git would quote (non-UTF-8 bytes, tabs, quotes, newlines) are read exactly under ``auto``."""
    names = [os.fsdecode(b"caf\xe9.txt"), "tab\there.txt", 'quo"te.txt', "back\\slash.txt", "new\nline.txt"]
    make_repo(tmp_path / "src", {name: f"{i}\n" for i, name in enumerate(names)})
    publish(tmp_path / "src", served.root)
    assert_identical(served, "org/repo", tmp_path / "c", max_file_size=MAX)
    checkout = clone_repo(f"{served.filtering.url}org/repo", tmp_path / "one" / "repo", CloneSettings(clone_timeout=60))
    assert sorted(p.name for p in checkout.path.iterdir() if p.name != ".git") == sorted(names)
