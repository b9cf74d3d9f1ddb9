"""Once a walk limit bites, the digest is chosen by the commit, not by the disk's directory order.

The same commit is cloned to ext4 (tmp_path) and to tmpfs (/dev/shm), and written file by file in reverse order
on tmpfs (tmpfs lists newest first, ext4 in hash order): three different ``os.scandir`` orders, one digest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.sample import make_repo
from xgov_digests.digest.build import make_digest
from xgov_digests.digest.format import Header
from xgov_digests.digest.walk import Limits

HEADER = Header("org", "repo", "https://github.com/org/repo", "c0ffee", "2024-01-01T00:00:00Z")
FILES = {f"f{i:03d}.txt": f"{i}\n" * (1 + i % 7) for i in range(120)}
FILES |= {f"pkg/m{i:03d}.py": f"x = {i}\n" for i in range(80)}
FILES |= {"README.md": "# r\n", ".env.example": "A=1\n", "notes/a.md": "a\n", "Notes/B.md": "b\n"}


def listing(folder: Path) -> list[str]:
    with os.scandir(folder) as it:
        return [e.name for e in it]


@pytest.fixture
def copies(tmp_path: Path) -> Iterator[list[Path]]:
    src = tmp_path / "src"
    make_repo(src, FILES)
    shm = Path("/dev/shm")
    scratch = Path(tempfile.mkdtemp(prefix="xgov-order-", dir=shm)) if shm.is_dir() else tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    try:
        out = []
        for where in (tmp_path / "ext4" / "repo", scratch / "tmpfs" / "repo"):  # the folder's name is in the tree
            subprocess.run(["git", "clone", "--quiet", str(src), str(where)], check=True, capture_output=True)
            shutil.rmtree(where / ".git")
            out.append(where)
        backwards = scratch / "backwards" / "repo"
        for rel in sorted(FILES, reverse=True):  # the same files, created in the opposite order
            (backwards / rel).parent.mkdir(parents=True, exist_ok=True)
            (backwards / rel).write_text(FILES[rel])
        out.append(backwards)
        yield out
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def digest(folder: Path, limits: Limits):
    return make_digest(folder, HEADER, max_file_size=10**6, max_summary_bytes=10**7, limits=limits)


def test_one_digest_whatever_the_directory_order(copies: list[Path]) -> None:
    orders = {tuple(listing(c)) for c in copies}
    if len(orders) < 2:
        pytest.skip("no two folders here list in different orders (/dev/shm, a tmpfs, is missing)")
    for limits, bit in ((Limits(files=50), "max_files"), (Limits(total_bytes=600), "max_total_bytes")):
        digests = [digest(c, limits) for c in copies]
        assert {d.walk_limit for d in digests} == {bit}
        assert len({d.data for d in digests}) == 1, f"{bit}: the digest depends on the directory order"
    full = [digest(c, Limits()) for c in copies]
    assert len({d.data for d in full}) == 1 and full[0].walk_limit is None


def test_the_files_kept_are_the_first_of_the_digest(copies: list[Path]) -> None:
    """With the file limit biting, the digest holds the first N files of the full digest, in its own order."""
    full = digest(copies[0], Limits()).data.decode()
    cut = digest(copies[0], Limits(files=50)).data.decode()
    names = [line[6:] for line in full.splitlines() if line.startswith("FILE: ")]
    kept = [line[6:] for line in cut.splitlines() if line.startswith("FILE: ")]
    assert len(kept) == 50 and kept == names[:50]
    assert kept[0] == "README.md" and "pkg/m000.py" not in kept  # README first, then files, before folders
