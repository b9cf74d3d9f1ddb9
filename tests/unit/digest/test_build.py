"""Digests: identical to stock gitingest's tree and content, deterministic, capped on a UTF-8 boundary."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import gitingest.output_formatter
import pytest

from tests.fixtures.sample import make_repo
from xgov_digests.clone.git import clone
from xgov_digests.core.params import CloneSettings
from xgov_digests.digest.build import make_digest
from xgov_digests.digest.format import Header, truncate

HEADER = Header("org", "repo", "https://github.com/org/repo", "c0ffee", "2024-01-01T00:00:00Z")


def stock_gitingest(folder: Path, max_file_size: int, monkeypatch: pytest.MonkeyPatch) -> str:
    """What ``gitingest`` itself writes for a local folder (its token count needs the network: off)."""
    monkeypatch.setattr(gitingest.output_formatter, "_format_token_count", lambda text: None)
    _, tree, content = asyncio.run(gitingest.ingest_async(str(folder), max_file_size=max_file_size))
    return f"{tree}\n{content}"


@pytest.fixture
def varied_repo(tmp_path: Path) -> Path:
    files = {
        "README.md": "# Title\n",
        "src/lib/mod.py": "x = 1\n",
        "src/lib/deep/er/file.txt": "deep\n",
        ".hidden": "h\n",
        ".github/workflows/ci.yml": "on: push\n",
        "bin/blob.dat": bytes(range(256)) * 4,
        "big.txt": "y" * 5000,
        "café/ünï.md": "é\n",
        "node_modules/x/index.js": "ignored by gitingest's defaults\n",
        ".gitignore": "*.log\n",
        "keep.log": "ignored by .gitignore\n",
        "latin1.txt": "caf\xe9".encode("latin-1"),
        "empty.txt": "",
    }
    path = tmp_path / "varied"
    make_repo(path, files, symlinks={"link": "README.md", "outside": "/etc/passwd", "up": "../.."}, commits=3)
    return path


def test_digest_matches_stock_gitingest(varied_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = make_digest(varied_repo, HEADER, max_file_size=1000, max_summary_bytes=10**7)
    text = digest.data.decode()
    header, _, body = text.partition("\n\n")
    assert body == stock_gitingest(varied_repo, 1000, monkeypatch)
    assert header.splitlines() == [
        "Repository: org/repo",
        "URL: https://github.com/org/repo",
        "Commit: c0ffee",
        "Pushed at: 2024-01-01T00:00:00Z",
        f"Files analyzed: {digest.files}",
    ]
    assert "FILE: src/lib/deep/er/file.txt" in body and "FILE: café/ünï.md" in body
    assert "FILE: big.txt" not in body  # over max_file_size
    assert "node_modules" not in body and "keep.log" not in body
    assert "root:" not in body  # the /etc/passwd symlink's target is never read


def test_same_commit_gives_identical_bytes(varied_repo: Path, tmp_path: Path) -> None:
    a = clone(varied_repo.as_uri(), tmp_path / "a" / "varied", CloneSettings())
    b = clone(varied_repo.as_uri(), tmp_path / "b" / "varied", CloneSettings())
    da = make_digest(a.path, HEADER, max_file_size=1000, max_summary_bytes=10**6)
    db = make_digest(b.path, HEADER, max_file_size=1000, max_summary_bytes=10**6)
    assert a.commit == b.commit and da.data == db.data
    assert b"/tmp" not in da.data and str(tmp_path).encode() not in da.data
    shutil.rmtree(tmp_path / "a")


def test_truncation_on_utf8_boundary() -> None:
    data = ("é" * 1000).encode()  # 2 bytes a character
    for cap in (1024, 1025, 1500):
        out, truncated = truncate(data, cap)
        assert truncated and len(out) <= cap
        out.decode("utf-8")  # never cuts a character in half
        assert out.endswith(b"by ingest.max_summary_bytes]\n")
        assert out.count(b"\n") == 2  # the notice is one line
    assert truncate(data, 4000) == (data, False)


def test_digest_capped(varied_repo: Path) -> None:
    digest = make_digest(varied_repo, HEADER, max_file_size=10**6, max_summary_bytes=2048)
    assert digest.truncated and len(digest.data) <= 2048
    assert digest.data.startswith(b"Repository: org/repo\n")
