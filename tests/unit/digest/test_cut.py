"""A digest checks out and reads only what it keeps: under ``clone_filter: auto`` with the digest's cut known, the
files past the estimated cut stand on disk with their size only, and the digest asks for more when it reaches one.
The bytes are stock gitingest's on the full checkout, cut at the same place, wherever the cut falls: in a binary, a
notebook, a latin-1 file, a multi-byte character, exactly at a file's end, beside files over ``max_file_size``,
symlinks and a submodule."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
from pathlib import Path

import gitingest
import gitingest.output_formatter
import pytest

from tests.fixtures.sample import git, make_repo
from tests.fixtures.served import HEADER, Served, publish
from xgov_digests.clone import strategy
from xgov_digests.clone.strategy import CutCheckout, clone_repo, digest_cut, digest_order
from xgov_digests.core.params import CloneSettings
from xgov_digests.digest.build import Digest, make_digest
from xgov_digests.digest.format import render_header, truncate

MAX = 40_000  # max_file_size

NOTEBOOK = json.dumps(
    {
        "cells": [
            {
                "cell_type": "code",
                "source": ["print('hi')\n"],
                "outputs": [{"text": "x" * 30_000}],
                "metadata": {},
                "execution_count": 1,
            }
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
)  # 30 kB of outputs that the conversion drops


def tree_files() -> dict[str, str | bytes]:
    """Files whose blocks decide a cut, in the digest's order, each about 10-30 kB."""
    files: dict[str, str | bytes] = {"README.md": "# cut\n" + "r" * 9000 + "\n"}
    files |= {f"a{i:02d}.txt": f"{i} " * 4000 + "\n" for i in range(6)}
    files["b-binary.dat"] = bytes(range(256)) * 80  # 20 kB whose block is "[Binary file]"
    files["c-notebook.ipynb"] = NOTEBOOK
    files["d-latin1.txt"] = "caf\xe9 ".encode("latin-1") * 3000  # decoded as latin-1: 1.2 bytes out per byte in
    files["e-utf8.txt"] = "é" * 6000 + "\n"  # two bytes a character: a cut falls inside one
    files["f-bad-utf8.txt"] = b"ok " * 5000 + b"\xff\xfe tail\n"  # an error text instead of its content
    files["g-over.txt"] = "o" * (MAX + 1)  # over max_file_size: not in the digest at all
    files["h-empty.txt"] = ""
    files |= {f"pkg/m{i:02d}.py": f"x_{i} = {i}\n" * 2000 for i in range(5)}
    files |= {f"zz/late{i:02d}.txt": random.Random(i).randbytes(12_000).hex() + "\n" for i in range(8)}  # packs ~2:1
    files["zz/package-lock.json"] = "{}\n" * 5000  # dropped by gitingest's default patterns
    return files


@pytest.fixture(autouse=True)
def no_token_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gitingest.output_formatter, "_format_token_count", lambda text: None)


def stock_cut(folder: Path, cap: int, max_file_size: int = MAX) -> bytes:
    """Stock gitingest on a full checkout, under our header, cut at ``cap`` (the checkout's path removed)."""
    summary, tree, content = asyncio.run(gitingest.ingest_async(str(folder), max_file_size=max_file_size))
    files = int(next(ln for ln in summary.splitlines() if ln.startswith("Files analyzed:")).split(":")[1])
    text = f"{render_header(HEADER, files)}\n{tree}\n{content}".replace(f"{folder.resolve()}/", "")
    return truncate(text.encode("utf-8", "replace"), cap)[0]


DIGESTS: list[frozenset[str]] = []  # the absent set of every digest run by cut_clone, in order


def cut_clone(srv: Served, dest: Path, cap: int, name: str = "repo") -> tuple[Digest, CutCheckout | None, int]:
    """(digest, the checkout, bytes the server sent) of a clone that knows the cut."""
    before = srv.filtering.bytes_sent
    checkout = clone_repo(
        f"{srv.filtering.url}org/{name}",
        dest / name,
        CloneSettings(clone_filter="auto", clone_timeout=60, retries=0, max_file_size=MAX, max_summary_bytes=cap),
    )

    def digest(absent: frozenset[str]) -> Digest:
        DIGESTS.append(absent)
        return make_digest(checkout.path, HEADER, max_file_size=MAX, max_summary_bytes=cap, absent=absent)

    result, _ = digest_cut(checkout, cap, digest)
    cut = checkout if isinstance(checkout, CutCheckout) else None
    return result, cut, srv.filtering.bytes_sent - before


@pytest.fixture
def full(served: Served, tmp_path: Path) -> Path:
    """The repo published, and its full checkout (``off``) for stock gitingest to read."""
    src = tmp_path / "src"
    make_repo(src, tree_files(), symlinks={"link-to-readme": "README.md", "pkg/link-up": ".."})
    publish(src, served.root)
    return clone_repo(
        f"{served.filtering.url}org/repo",
        tmp_path / "off" / "repo",
        CloneSettings(clone_filter="off", clone_timeout=60, retries=0, max_file_size=MAX),
    ).path


def boundaries(folder: Path) -> list[int]:
    """Caps that put the cut at the edges and inside of every file's block of the full digest."""
    data = make_digest(folder, HEADER, max_file_size=MAX, max_summary_bytes=10**8).data
    starts = [i for i in range(len(data)) if data.startswith(b"=" * 48 + b"\nFILE: ", i)]
    caps = set()
    for start in starts:
        caps |= {start - 1, start, start + 1, start + 60, start + 5000}
    return sorted(c for c in caps if 200 < c < len(data) + 100)


@pytest.mark.parametrize("tight", [False, True], ids=["margin", "no-margin"])
def test_every_cut_gives_stock_gitingest_bytes(
    served: Served, full: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tight: bool
) -> None:
    """Wherever the cut falls, the digest equals stock gitingest's full output cut there; with no margin every
    file read past the first estimate is asked for again (the loop)."""
    if tight:
        monkeypatch.setattr(strategy, "CUT_MARGIN", 1.0)
        monkeypatch.setattr(strategy, "CUT_SLACK", 0)
    caps = boundaries(full)
    assert len(caps) > 40
    again = 0
    for cap in caps[:: 3 if tight else 4]:
        DIGESTS.clear()
        got, checkout, _ = cut_clone(served, tmp_path / f"cut-{cap}", cap)
        assert got.data == stock_cut(full, cap), f"cap {cap}: differs from stock gitingest"
        assert got.data == make_digest(full, HEADER, max_file_size=MAX, max_summary_bytes=cap).data
        again += len(DIGESTS) > 1
        assert DIGESTS[-1] or cap > 100_000, f"cap {cap}: every file checked out"  # the last ones are never read
        shutil.rmtree(tmp_path / f"cut-{cap}")
    assert again if tight else True  # the tight estimate misses: the loop ran


def test_a_file_past_the_cut_is_never_checked_out_or_read(served: Served, full: Path, tmp_path: Path) -> None:
    cap = 30_000
    got, checkout, _ = cut_clone(served, tmp_path / "cut", cap)
    assert got.truncated and got.data == stock_cut(full, cap)
    assert checkout is not None
    late = checkout.path / "zz" / "late07.txt"
    assert "zz/late07.txt" in checkout.absent and late.stat().st_size == (full / "zz" / "late07.txt").stat().st_size
    assert late.stat().st_blocks == 0, "a file past the cut holds no data"
    assert not (checkout.path / "zz" / "package-lock.json").exists()  # dropped by pattern: not even its size
    assert (checkout.path / "link-to-readme").is_symlink()  # symlinks are always checked out
    assert (checkout.path / "README.md").read_text().startswith("# cut")


def test_a_file_past_the_cut_is_never_downloaded(served: Served, full: Path, tmp_path: Path) -> None:
    """The server answers ``object-info``: the sizes come without the blobs, and a file wholly past the cut never
    leaves the server (git's own object store says it is missing; the server sent less than a clone without the
    cut)."""
    cap = 30_000
    got, checkout, sent = cut_clone(served, tmp_path / "cut", cap)
    assert got.data == stock_cut(full, cap) and checkout is not None
    late = {p: git(full, "rev-parse", f"HEAD:{p}") for p in checkout.absent if p.startswith("zz/")}
    assert len(late) == 8
    missing = git(checkout.path, "rev-list", "--objects", "--missing=print", "HEAD")
    assert {f"?{oid}" for oid in late.values()} <= set(missing.splitlines()), "a file past the cut was downloaded"
    before = served.filtering.bytes_sent
    clone_repo(
        f"{served.filtering.url}org/repo",
        tmp_path / "whole" / "repo",
        CloneSettings(clone_filter="auto", clone_timeout=60, retries=0, max_file_size=MAX),
    )
    whole = served.filtering.bytes_sent - before
    print(f"bytes sent: {sent} with the cut, {whole} without")
    assert sent < whole / 2


def test_without_object_info_the_sizes_come_with_the_blobs(
    served: Served, full: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that does not answer ``object-info`` (GitHub): the kept blobs are fetched for their sizes, and still
    only the files before the cut are checked out; the same bytes."""
    monkeypatch.setattr(strategy, "object_sizes", lambda *a, **k: None)
    for cap in (30_000, 120_000):
        got, checkout, _ = cut_clone(served, tmp_path / f"cut{cap}", cap)
        assert got.data == stock_cut(full, cap) and checkout is not None and checkout.absent


def test_a_server_that_refuses_object_info_is_not_asked_again(tmp_path: Path) -> None:
    """GitHub does not serve object-info: the clone falls back to fetching the kept blobs (the same digest), and the
    host is asked once a process, not once a repo."""
    from tests.fixtures.gitserver import GitServer, Reply, Request
    from xgov_digests.clone import git as gitmod

    asked: list[str] = []

    class Refuses(GitServer):
        def before(self, request: Request) -> Reply | None:
            if b"command=object-info" in request.body[:64]:
                asked.append(request.path)
                return Reply(400, [("Content-Type", "text/plain")], b"no\n")
            return None

    src = tmp_path / "src"
    make_repo(src, tree_files())
    publish(src, tmp_path / "srv")
    publish(src, tmp_path / "srv", name="again")
    with Refuses(tmp_path / "srv", lifetime=120) as server:
        try:
            for name in ("repo", "again"):
                checkout = clone_repo(
                    f"{server.url}org/{name}",
                    tmp_path / "c" / name,
                    CloneSettings(
                        clone_filter="auto", clone_timeout=60, retries=0, max_file_size=MAX, max_summary_bytes=30_000
                    ),
                )
                assert isinstance(checkout, CutCheckout) and checkout.absent
        finally:
            gitmod._NO_OBJECT_INFO.clear()
    assert len(asked) == 1


def test_the_comparison_can_fail(served: Served, full: Path, tmp_path: Path) -> None:
    """A digest that read a file past the cut as it stands on disk (zeros) would differ."""
    cap = 400_000
    checkout = clone_repo(
        f"{served.filtering.url}org/repo",
        tmp_path / "c" / "repo",
        CloneSettings(clone_filter="auto", clone_timeout=60, retries=0, max_file_size=MAX, max_summary_bytes=20_000),
    )
    assert isinstance(checkout, CutCheckout) and checkout.absent
    wrong = make_digest(checkout.path, HEADER, max_file_size=MAX, max_summary_bytes=cap).data  # absent ignored
    assert wrong != stock_cut(full, cap)
    unfinished = make_digest(
        checkout.path, HEADER, max_file_size=MAX, max_summary_bytes=cap, absent=frozenset(checkout.absent)
    )
    assert unfinished.needs and unfinished.data == b"" and unfinished.needs[0] in checkout.absent


def test_walk_limits_keep_their_meaning(served: Served, full: Path, tmp_path: Path) -> None:
    """max_files and max_total_bytes count the files past the cut by their size on disk, as on a full checkout."""
    from xgov_digests.digest.walk import Limits

    for limits in (Limits(files=9), Limits(total_bytes=150_000)):
        checkout = clone_repo(
            f"{served.filtering.url}org/repo",
            tmp_path / str(limits) / "repo",
            CloneSettings(
                clone_filter="auto", clone_timeout=60, retries=0, max_file_size=MAX, max_summary_bytes=10_000
            ),
        )
        got, _ = digest_cut(
            checkout,
            10**6,
            lambda absent, c=checkout, lim=limits: make_digest(
                c.path, HEADER, max_file_size=MAX, max_summary_bytes=10**6, limits=lim, absent=absent
            ),
        )
        want = make_digest(full, HEADER, max_file_size=MAX, max_summary_bytes=10**6, limits=limits)
        assert got.data == want.data and got.walk_limit == want.walk_limit and got.walk_limit


def test_submodule_empty_and_attribute_trees(served: Served, tmp_path: Path) -> None:
    """A submodule (a gitlink: nothing to check out), a .gitattributes that changes sizes on checkout (eol=crlf:
    those files are checked out whatever the cut), an empty repository."""
    sub = tmp_path / "sub"
    make_repo(sub, {"inner.txt": "inner\n"})
    src = tmp_path / "src"
    files: dict[str, str | bytes] = {f"f{i:02d}.txt": f"line {i}\n" * 2000 for i in range(10)}
    files[".gitattributes"] = "crlf-*.txt text eol=crlf\n"
    files["crlf-z.txt"] = "unix line\n" * 3000
    make_repo(src, files)
    git(src, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub), "vendored")
    git(src, "commit", "-q", "-m", "submodule")
    publish(src, served.root, name="mixed")
    off = clone_repo(
        f"{served.filtering.url}org/mixed",
        tmp_path / "off" / "mixed",
        CloneSettings(clone_filter="off", clone_timeout=60, retries=0, max_file_size=MAX),
    ).path
    for cap in (5_000, 50_000, 110_000, 10**6):
        got, checkout, _ = cut_clone(served, tmp_path / f"cut-{cap}", cap, name="mixed")
        assert got.data == stock_cut(off, cap), cap
        if checkout is not None:
            assert "crlf-z.txt" not in checkout.absent
    empty = tmp_path / "srv" / "org" / "empty"
    empty.mkdir(parents=True)
    git(empty, "init", "-q", "--bare")
    from xgov_digests.clone.git import EmptyRepo

    with pytest.raises(EmptyRepo):
        cut_clone(served, tmp_path / "e", 1000, name="empty")


def test_digest_order_is_the_walks() -> None:
    entries = [
        strategy.TreeEntry(p, "blob")
        for p in ("b.txt", "README.md", ".dot", "a/z.txt", "a/README", "A.txt", "c/d/e.txt")
    ]
    entries.append(strategy.TreeEntry("link", "link"))
    order = digest_order({e.path for e in entries}, entries)
    assert order == ["README.md", "A.txt", "b.txt", ".dot", "a/README", "a/z.txt", "c/d/e.txt", "link"]
    assert os.sep == "/"


def assert_cut_identical(srv: Served, repo: str, tmp: Path, caps: list[int], max_file_size: int) -> None:
    """For each cap: the cut clone's digest equals the digest of a full clone cut there (no margin: every estimate
    that falls short sends the digest back for more)."""
    owner, name = repo.split("/")
    off = clone_repo(
        f"{srv.filtering.url}{repo}",
        tmp / "off" / name,
        CloneSettings(clone_filter="off", clone_timeout=60, retries=0, max_file_size=max_file_size),
    ).path
    for cap in caps:
        dest = tmp / f"cut-{cap}" / name
        checkout = clone_repo(
            f"{srv.filtering.url}{repo}",
            dest,
            CloneSettings(
                clone_filter="auto", clone_timeout=60, retries=0, max_file_size=max_file_size, max_summary_bytes=cap
            ),
        )
        got, _ = digest_cut(
            checkout,
            cap,
            lambda absent, c=checkout, m=cap: make_digest(
                c.path, HEADER, max_file_size=max_file_size, max_summary_bytes=m, absent=absent
            ),
        )
        want = make_digest(off, HEADER, max_file_size=max_file_size, max_summary_bytes=cap)
        assert got.data == want.data, f"{repo}, cap {cap}: differs from the full clone's digest"
        shutil.rmtree(dest.parent)
    shutil.rmtree(off.parent)


def test_tricky_tree_at_every_cut(
    tricky: Path,
    served: Served,
    tmp_path: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.fixtures.sample import commit

    monkeypatch.setattr(strategy, "CUT_MARGIN", 1.0)
    monkeypatch.setattr(strategy, "CUT_SLACK", 0)
    commit(tricky, "commit the untracked extras: large text, broken and binary files")
    publish(tricky, served.root)
    for max_file_size in (1000, 200_000):
        assert_cut_identical(
            served,
            "org/repo",
            tmp_path / str(max_file_size),
            [300, 2_000, 5_000, 9_000, 20_000, 60_000, 150_000],
            max_file_size,
        )


@pytest.mark.slow
def test_sample_repos_at_every_cut(
    corpus: tuple[Path, list[dict]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(strategy, "CUT_MARGIN", 1.0)
    monkeypatch.setattr(strategy, "CUT_SLACK", 0)
    root, entries = corpus
    srv = Served(root / "repos")
    try:
        for entry in entries[:8]:
            assert_cut_identical(srv, f"{entry['owner']}/{entry['name']}", tmp_path, [1_000, 8_000, 40_000], MAX)
    finally:
        srv.stop()
