"""The digest on hostile checkouts: nothing outside the checkout is read, ignore files never lose a repo, every cap
gives the whole text's cut, walk limits are reported, a digest that never ends is killed at its budget."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import gitingest.ingestion
import gitingest.output_formatter
import pytest

from tests.fixtures.sample import make_repo
from xgov_digests.clone.cleanup import remove_tree
from xgov_digests.core.params import DigestSettings
from xgov_digests.digest.budget import DigestPool
from xgov_digests.digest.build import make_digest
from xgov_digests.digest.errors import DigestBug, DigestTimeout
from xgov_digests.digest.format import Header, assemble, render_header, truncate
from xgov_digests.digest.ignore_files import MAX_IGNORE_BYTES
from xgov_digests.digest.walk import Limits, Scan

HEADER = Header("org", "repo", "https://github.com/org/repo", "c0ffee", "2024-01-01T00:00:00Z")
HANG_PATTERN = "a*a*a*a*a*a*a*a*a*a*a*a*b"


@pytest.fixture(autouse=True)
def no_token_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gitingest.output_formatter, "_format_token_count", lambda text: None)


def stock(folder: Path, max_file_size: int = 10**6) -> str:
    _, tree, content = asyncio.run(gitingest.ingest_async(str(folder), max_file_size=max_file_size))
    return f"{tree}\n{content}"


def body(folder: Path, **kw) -> tuple[str, tuple[str, ...]]:
    digest = make_digest(folder, HEADER, max_file_size=10**6, max_summary_bytes=10**7, **kw)
    return digest.data.decode().split("\n", 6)[6], digest.warnings


# --- nothing outside the checkout is read -------------------------------------------------------------------------


def test_symlinked_ignore_files_pointing_outside_are_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "patterns").write_text("README.md\n*.py\n")
    repo = tmp_path / "repo"
    make_repo(
        repo,
        {"README.md": "# kept\n", "src/a.py": "x = 1\n"},
        symlinks={".gitignore": str(outside / "patterns"), "src/.gitingestignore": "../../host/patterns"},
    )
    stock_text = stock(repo)
    assert "FILE: README.md" not in stock_text  # stock gitingest follows the links: the host file hides README.md
    text, warnings = body(repo)
    assert "FILE: README.md" in text and "FILE: src/a.py" in text and "# kept" in text
    assert warnings == (
        ".gitignore: a symlink to outside the checkout, not read",
        "src/.gitingestignore: a symlink to outside the checkout, not read",
    )


def test_symlinked_ignore_file_inside_the_checkout_is_followed_like_stock(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(
        repo,
        {"README.md": "r\n", "a.log": "l\n", "b.txt": "b\n", "conf/ignore": "*.log\n"},
        symlinks={".gitignore": "conf/ignore"},
    )
    text, warnings = body(repo)
    assert text == stock(repo) and "a.log" not in text and warnings == ()


def test_ignore_file_that_is_a_fifo_is_not_opened(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"README.md": "r\n"})
    os.mkfifo(repo / ".gitignore")  # opening it for reading would block for ever
    text, warnings = body(repo)
    assert "FILE: README.md" in text and warnings == ()


def test_ignore_files_are_read_up_to_a_bound(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    filler = ("#" + "x" * 1000 + "\n") * (MAX_IGNORE_BYTES // 1000)  # comment lines: more than the bound
    make_repo(
        repo,
        {
            "README.md": "r\n",
            "early.txt": "e\n",
            "late.txt": "l\n",
            ".gitignore": "early.txt\n" + filler + "late.txt\n",
        },
    )
    text, warnings = body(repo)
    assert "early.txt" not in text and "FILE: late.txt" in text  # lines after the first MiB are not read
    assert warnings == (f".gitignore: larger than {MAX_IGNORE_BYTES} bytes, only its first lines read",)


def test_latin1_nested_ignore_file_keeps_the_repo(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(
        repo,
        {
            "README.md": "r\n",
            "docs/résumé.txt": "hidden\n",
            "docs/keep.txt": "k\n",
            "docs/.gitingestignore": "# caf\xe9\nr\xe9sum\xe9.txt\n".encode("latin-1"),
        },
    )
    text, warnings = body(repo)
    assert "résumé" not in text and "FILE: docs/keep.txt" in text
    assert warnings == ("docs/.gitingestignore: not UTF-8 (byte 0xe9 at 5), read as Latin-1",)


# --- the streamed cut equals cutting the whole text ---------------------------------------------------------------

BROKEN_NOTEBOOK = "{not json"
NOTEBOOK = json.dumps(
    {
        "cells": [{"cell_type": "code", "source": ["x = 'é'\n"], "outputs": []}],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
)


def notebook_tree(root: Path, seed: int) -> Path:
    """Broken notebooks (gitingest's error text names the checkout's absolute path) among varied files."""
    rng = random.Random(seed)
    files: dict[str, str | bytes] = {f"nb/n{i:02d}.ipynb": BROKEN_NOTEBOOK for i in range(rng.randint(5, 40))}
    for i in range(rng.randint(1, 12)):
        kind = rng.random()
        files[f"f{i}.{rng.choice(['txt', 'md', 'py'])}"] = (
            "é✓" * rng.randint(0, 300)
            if kind < 0.4
            else rng.randbytes(200)
            if kind < 0.5
            else "x\n" * rng.randint(0, 400)
        )
    files["good.ipynb"] = NOTEBOOK
    path = root / f"tree{seed}"
    make_repo(path, files, symlinks={"lnk": "f0.txt"})
    return path


@pytest.mark.parametrize("seed", range(3))
def test_every_cap_gives_the_whole_texts_cut(tmp_path: Path, seed: int) -> None:
    """A sweep of every cap from 1 KiB to past the end: the streamed digest is the whole digest cut at that cap."""
    tree = notebook_tree(tmp_path, seed)
    scan = Scan(tree, 10**6, Limits())
    pieces = [render_header(HEADER, scan.tree.file_count), "\n", scan.tree_text(), "\n", *scan.content_pieces()]
    strip = f"{scan.root}/"
    whole = "".join(pieces)
    assert strip in whole  # the error texts name the checkout: the case under test exists
    stripped = whole.replace(strip, "").encode("utf-8", "replace")
    caps = range(1024, len(whole.encode()) + 64)
    assert len(caps) > 1000
    differ = [cap for cap in caps if assemble(iter(pieces), strip, cap) != truncate(stripped, cap)]
    assert differ == []
    for cap in random.Random(seed).sample(caps, 40):  # and the public entry point, end to end
        digest = make_digest(tree, HEADER, max_file_size=10**6, max_summary_bytes=cap)
        assert (digest.data, digest.truncated) == truncate(stripped, cap)
        assert strip.encode() not in digest.data


def test_the_sweep_catches_counting_before_removing_the_path(tmp_path: Path) -> None:
    """Counting characters before removing the checkout path stops early at some caps: the sweep above sees it."""
    tree = notebook_tree(tmp_path, 0)
    scan = Scan(tree, 10**6, Limits())
    pieces = [render_header(HEADER, scan.tree.file_count), "\n", scan.tree_text(), "\n", *scan.content_pieces()]
    strip = f"{scan.root}/"
    stripped = "".join(pieces).replace(strip, "").encode()

    def count_first(cap: int) -> tuple[bytes, bool]:
        out, chars = [], 0
        for piece in pieces:
            if chars > cap:
                break
            out.append(piece)
            chars += len(piece)
        return truncate("".join(out).replace(strip, "").encode(), cap)

    assert any(count_first(cap) != truncate(stripped, cap) for cap in range(1024, len(stripped) + 64))


# --- walk limits --------------------------------------------------------------------------------------------------


def test_walk_limits_are_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {f"f{i:02d}.txt": "x" * 100 for i in range(20)} | {"deep/a/b/c/d.txt": "d\n"})
    full = make_digest(repo, HEADER, max_file_size=10**6, max_summary_bytes=10**7)
    assert full.walk_limit is None and full.files == 21
    by_files = make_digest(repo, HEADER, max_file_size=10**6, max_summary_bytes=10**7, limits=Limits(files=5))
    assert by_files.walk_limit == "max_files" and by_files.files == 5
    by_bytes = make_digest(repo, HEADER, max_file_size=10**6, max_summary_bytes=10**7, limits=Limits(total_bytes=550))
    assert by_bytes.walk_limit == "max_total_bytes" and by_bytes.files == 6  # five 100-byte files and d.txt
    monkeypatch.setattr(gitingest.ingestion, "MAX_DIRECTORY_DEPTH", 2)
    by_depth = make_digest(repo, HEADER, max_file_size=10**6, max_summary_bytes=10**7)
    assert by_depth.walk_limit == "depth" and "d.txt" not in by_depth.data.decode()


def test_deeper_than_the_recursion_limit(tmp_path: Path) -> None:
    repo = tmp_path / "deep"
    make_repo(repo, {"README.md": "r\n"})
    nested = os.path.join(str(repo), *["d"] * 1100)  # pathlib and os.makedirs recurse on 1,100 parts: mkdir -p
    subprocess.run(["mkdir", "-p", nested], check=True)
    with open(os.path.join(nested, "bottom.txt"), "w") as fh:
        fh.write("b\n")
    try:
        digest = make_digest(repo, HEADER, max_file_size=10**6, max_summary_bytes=10**7)
        assert digest.walk_limit == "depth" and b"FILE: README.md" in digest.data and b"bottom.txt" not in digest.data
    finally:
        assert remove_tree(repo) and not repo.exists()  # pytest's own clean-up recurses and fails on 1,100 levels


# --- the time budget ----------------------------------------------------------------------------------------------


def test_a_digest_that_never_ends_is_killed_at_its_budget(tmp_path: Path) -> None:
    hang = tmp_path / "hang"
    make_repo(hang, {".gitignore": HANG_PATTERN + "\n", "a" * 60: "", "README.md": "r\n"})
    fine = tmp_path / "fine"
    make_repo(fine, {"README.md": "fine\n"})
    with DigestPool(2, 2.0) as pool:
        start = time.monotonic()
        with pytest.raises(DigestTimeout, match="digest timed out after 2 s"):
            pool.digest(hang, HEADER, DigestSettings(max_file_size=10**6, max_summary_bytes=10**6))
        assert time.monotonic() - start < 5
        got = pool.digest(fine, HEADER, DigestSettings(max_file_size=10**6, max_summary_bytes=10**6))  # a new worker
        assert got == make_digest(fine, HEADER, max_file_size=10**6, max_summary_bytes=10**6)
        with pytest.raises(DigestBug, match="FileNotFoundError") as bug:  # an exception in the digest code
            pool.digest(tmp_path / "missing", HEADER, DigestSettings(max_file_size=10**6, max_summary_bytes=10**6))
        assert "Traceback" in str(bug.value)


def test_checkout_removal_survives_read_only_folders_and_deep_nesting(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    locked = root / "locked" / "inner"
    locked.mkdir(parents=True)
    (locked / "file.txt").write_text("x")
    (locked / "sub").mkdir()
    locked.chmod(0o500)  # its entries cannot be deleted
    (root / "locked").chmod(0o500)
    (root / "noperm").mkdir()
    (root / "noperm" / "f").write_text("y")
    (root / "noperm").chmod(0)
    deep = root / "deep"
    deep.mkdir()
    fd = os.open(deep, os.O_RDONLY)
    try:  # 1,100 levels through relative paths: deeper than shutil.rmtree's recursion
        for _ in range(1100):
            os.mkdir("d", dir_fd=fd)
            nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
    finally:
        os.close(fd)
    assert remove_tree(root) and not root.exists()


def test_the_budget_works_under_a_long_tmpdir(tmp_path: Path) -> None:
    """The fork server's socket lives under TMPDIR, and an AF_UNIX path holds at most 107 bytes."""
    long_tmp = tmp_path / ("t" * 100)
    long_tmp.mkdir()
    repo = tmp_path / "repo"
    make_repo(repo, {"README.md": "r\n"})
    script = (
        "import sys; from pathlib import Path; from xgov_digests.digest.format import Header; "
        "from xgov_digests.digest.budget import DigestPool; from xgov_digests.core.params import DigestSettings\n"
        "if __name__ == '__main__':\n"
        "    with DigestPool(1, 30) as pool:\n"
        f"        d = pool.digest(Path({str(repo)!r}), Header('o', 'n', 'u', 'c', None), "
        "DigestSettings(max_file_size=10**6, max_summary_bytes=10**6))\n"
        "    sys.stdout.write(str(d.files))\n"
    )
    (tmp_path / "probe.py").write_text(script)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "probe.py")],
        env={**os.environ, "TMPDIR": str(long_tmp)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout == "1", done.stderr
