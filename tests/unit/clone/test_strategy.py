"""ingest.clone_filter: a partial clone digests byte for byte like a full one, over smart HTTP with and without
filter support, and downloads less."""

from __future__ import annotations

import os
import random
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest
from gitingest.utils.ignore_patterns import DEFAULT_IGNORE_PATTERNS

from tests.fixtures.gitserver import GitServer, Reply, Request
from tests.fixtures.sample import commit, git, make_repo
from tests.fixtures.served import HEADER, Served, assert_identical, digest_of, publish
from xgov_digests.clone.git import CloneError
from xgov_digests.clone.strategy import TreeEntry, clone_repo, sparse_patterns, unquote
from xgov_digests.core.params import CloneSettings, IngestParams, ParamsError, parse_params
from xgov_digests.digest.build import make_digest
from xgov_digests.feed.snapshot import Repo
from xgov_digests.shard.cache import fingerprint
from xgov_digests.shard.run import ShardRun


def test_tricky_tree_identical(tricky: Path, served: Served, tmp_path: Path) -> None:  # noqa: F811
    commit(tricky, "commit the untracked extras: large text, broken and binary files")
    publish(tricky, served.root)
    for max_file_size in (1000, 200_000):
        sent = assert_identical(served, "org/repo", tmp_path / "c", max_file_size)
        assert sent["fallback"] > 0.95 * sent["off"]  # the plain server sends every blob


@pytest.mark.slow
def test_sample_repos_identical(corpus: tuple[Path, list[dict]], tmp_path: Path) -> None:
    root, entries = corpus
    served = Served(root / "repos")  # work trees: git http-backend serves their .git
    try:
        for entry in entries[:8]:
            assert_identical(served, f"{entry['owner']}/{entry['name']}", tmp_path)
    finally:
        served.stop()


def winning_negations(at_least: int = 20) -> list[str]:
    """File names ``keepN.log`` whose ``!keepN.log`` lines re-include at least one of them in this process: the
    pattern set is built as the digest builds it, and one negation must come after gitingest's '*.log'."""
    names = [f"keep{i}.log" for i in range(at_least)]
    while True:
        patterns = DEFAULT_IGNORE_PATTERNS.copy()
        patterns.update(f"!{name}" for name in names)
        order = list(patterns)
        if any(order.index(f"!{name}") > order.index("*.log") for name in names):
            return names
        names.append(f"keep{len(names)}.log")


def test_negated_default_pattern_fetched_in_a_second_batch(served: Served, tmp_path: Path) -> None:
    """A .gitignore negation can re-include what gitingest's defaults drop: those files are fetched after the
    ignore files are read. Whether a negation beats '*.log' depends on the order of gitingest's pattern set (string
    hashing, so this process's seed): negations are added until one comes after '*.log' in that order."""
    keep = winning_negations()
    files = {name: f"kept {name}\n" for name in keep} | {"app.py": "x = 1\n", "drop.log": "dropped\n"}
    files[".gitignore"] = "".join(f"!{name}\n" for name in keep)
    files["vendor/lib.go"] = random.Random(1).randbytes(20_000).hex()  # ignored by default: never downloaded
    make_repo(tmp_path / "src", files)
    publish(tmp_path / "src", served.root)
    sent = assert_identical(served, "org/repo", tmp_path / "c")
    auto, _ = digest_of(served.filtering, "org/repo", tmp_path / "again", "auto", 524288)
    assert b"FILE: keep" in auto and b"drop.log" not in auto and b"vendor" not in auto
    assert sent["auto"] < sent["off"]


def test_awkward_names_become_exact_sparse_patterns(served: Served, tmp_path: Path) -> None:
    """Names that mean something in a pattern, or are not UTF-8, are checked out exactly (git quotes them)."""
    files: dict[str, str | bytes] = {
        name: f"{i}\n"
        for i, name in enumerate(
            [
                "#hash.txt",
                "!bang.txt",
                "trailing space ",
                "br[ack]et.txt",
                "star*.txt",
                "q?.txt",
                "back\\slash.txt",
                "tab\there.txt",
                'quote".txt',
                "dir [x]/in.txt",
                "dir [x]/node_modules/skip.js",
                "é/ü.txt",
            ]
        )
    }
    src = tmp_path / "src"
    make_repo(src, files)
    (src / os.fsdecode(b"latin1-caf\xe9.txt")).write_text("not UTF-8\n")
    commit(src, "a name that is not UTF-8")
    publish(src, served.root)
    assert_identical(served, "org/repo", tmp_path / "c")
    checkout = clone_repo(f"{served.filtering.url}org/repo", tmp_path / "one" / "repo", CloneSettings(clone_timeout=60))
    on_disk = {os.fsencode(p.relative_to(checkout.path)) for p in checkout.path.rglob("*") if p.is_file()}
    assert b"latin1-caf\xe9.txt" in on_disk and b"trailing space " in on_disk and b"tab\there.txt" in on_disk
    assert not any(b"node_modules" in p for p in on_disk if not p.startswith(b".git/"))


def test_file_over_max_file_size_in_an_included_folder(served: Served, tmp_path: Path) -> None:
    files = {
        "src/app.py": "x = 1\n",
        "src/huge.txt": random.Random(2).randbytes(3000).hex(),
        "src/small.txt": "s\n",
        "src/exact.txt": "e" * 999 + "\n",
    }  # exactly max_file_size: kept
    make_repo(tmp_path / "src", files)
    publish(tmp_path / "src", served.root)
    assert_identical(served, "org/repo", tmp_path / "c", max_file_size=1000)
    before = served.filtering.bytes_sent
    checkout = clone_repo(
        f"{served.filtering.url}org/repo",
        tmp_path / "one" / "repo",
        CloneSettings(clone_timeout=60, max_file_size=1000),
    )
    assert served.filtering.bytes_sent - before < 2500  # the 3 kB random blob is not downloaded
    digest = make_digest(checkout.path, HEADER, max_file_size=1000, max_summary_bytes=10**6).data
    assert b"src/app.py" in digest and b"huge.txt" not in digest and not (checkout.path / "src/huge.txt").exists()
    assert b"FILE: src/exact.txt" in digest


def test_gitattributes_conversions_apply_as_in_a_full_checkout(served: Served, tmp_path: Path) -> None:
    """eol=crlf grows a.txt past max_file_size on disk (left out) while b.md stays under it (kept as CRLF)."""
    files = {
        ".gitattributes": "*.txt text eol=crlf\n*.md text eol=crlf\n",
        "a.txt": "x" * 9 + "\n" * 1,
        "big.txt": "line\n" * 190,
        "b.md": "one\ntwo\n",
        "vendor/v.txt": "v\n",
    }
    make_repo(tmp_path / "src", files)
    publish(tmp_path / "src", served.root)
    assert_identical(served, "org/repo", tmp_path / "c", max_file_size=1000)
    checkout = clone_repo(f"{served.filtering.url}org/repo", tmp_path / "one" / "repo", CloneSettings(clone_timeout=60))
    assert (checkout.path / "b.md").read_bytes() == b"one\r\ntwo\r\n"
    assert (checkout.path / "big.txt").stat().st_size == 1140 and not (checkout.path / "vendor").exists()


def test_partial_clone_fetches_in_batches_and_never_lazily_later(served: Served, tmp_path: Path) -> None:
    files = {f"src/m{i}.py": f"x = {i}\n" for i in range(50)}
    files |= {f"node_modules/p{i}/i.js": f"j{i}\n" for i in range(50)}
    make_repo(tmp_path / "src", files | {".gitignore": "*.tmp\n", "sub/.gitignore": "x\n"})
    publish(tmp_path / "src", served.root)
    server = served.filtering
    before = server.requests
    clone_repo(f"{server.url}org/repo", tmp_path / "off" / "repo", CloneSettings(clone_filter="off", clone_timeout=60))
    off_requests, before = server.requests - before, server.requests
    checkout = clone_repo(f"{server.url}org/repo", tmp_path / "auto" / "repo", CloneSettings(clone_timeout=60))
    auto_requests = server.requests - before
    # the blob-less clone, then one batch for the ignore files and the default-kept paths: 50 files, 2 requests
    assert auto_requests <= off_requests + 2, (off_requests, auto_requests)
    assert not (checkout.path / "node_modules").exists()
    listing = git(checkout.path, "rev-list", "--objects", "--missing=print", "HEAD").splitlines()
    assert sum(line.startswith("?") for line in listing) == 50  # node_modules' blobs were never downloaded
    before = server.requests
    with pytest.raises(subprocess.CalledProcessError):
        git(checkout.path, "cat-file", "-p", "HEAD:node_modules/p0/i.js")  # no lazy fetch: the blob stays missing
    assert server.requests == before


class CutsFirstBlobBatch(GitServer):
    """Resets the connection in the middle of the first pack after the clone's (the partial checkout's blobs)."""

    packs = 0

    def after(self, request: Request, reply: Reply) -> Reply:
        if request.method == "POST" and b"PACK" in reply.payload:
            with self.lock:
                self.packs += 1
                return replace(reply, cut=self.packs == 2)
        return reply


def test_blob_batch_cut_off_is_retried(tmp_path: Path) -> None:
    make_repo(tmp_path / "src", {f"f{i}.txt": random.Random(i).randbytes(3000).hex() for i in range(20)})
    publish(tmp_path / "src", tmp_path / "srv")
    with CutsFirstBlobBatch(tmp_path / "srv", lifetime=120) as server:
        checkout = clone_repo(
            f"{server.url}org/repo", tmp_path / "c" / "repo", CloneSettings(clone_timeout=60, retries=1, backoff=0.1)
        )
        assert server.packs == 3 and len(list(checkout.path.glob("f*.txt"))) == 20


def test_git_server_counts_bytes_and_shares_its_link_cap(tmp_path: Path) -> None:
    """Two clones at once over a 1 MB/s link: together they take about twice one 0.6 MB pack's time."""
    make_repo(tmp_path / "src", {"blob.bin": random.Random(3).randbytes(600_000)})
    publish(tmp_path / "src", tmp_path / "srv")
    with GitServer(tmp_path / "srv", link_bandwidth=1_000_000, lifetime=120) as server:
        start = time.monotonic()
        clones = [
            subprocess.Popen(["git", "clone", "-q", "--depth", "1", f"{server.url}org/repo", str(tmp_path / d)])
            for d in ("a", "b")
        ]
        assert [c.wait(60) for c in clones] == [0, 0]
        elapsed = time.monotonic() - start
        assert server.bytes_sent > 1_200_000 and server.stats()["link_bandwidth_bytes_per_s"] == 1_000_000
        assert elapsed >= 1.1, elapsed  # 1.2 MB through one 1 MB/s link (each alone would take 0.6 s)


def test_missing_repo_still_fails_at_once(served: Served) -> None:
    with pytest.raises(CloneError, match="git clone failed"):
        clone_repo(
            f"{served.filtering.url}org/nope",
            Path("/nonexistent-parent/never"),
            CloneSettings(clone_timeout=30, retries=0),
        )


def test_unquote_and_patterns() -> None:
    assert unquote('"caf\\303\\251/a\\tb\\"c"') == 'café/a\tb"c'
    assert unquote("plain/name.txt") == "plain/name.txt"
    entries = [TreeEntry(p, "blob") for p in ("a/x", "a/y", "b/x", "b/y", "c d*.txt")]
    assert sparse_patterns({"a/x", "a/y", "b/x", "c d*.txt"}, entries) == ["/a/", "/b/x", "/c\\ d\\*.txt"]
    assert sparse_patterns({e.path for e in entries}, entries, {"a/y"}) == ["/*", "!/a/y"]


def test_shard_digests_identical_with_clone_filter_off_and_auto(
    corpus: tuple[Path, list[dict]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shard runner with ingest.clone_filter auto and off, https://github.com URLs sent to the local server:
    the same files, and the setting is not in the digest cache's fingerprint."""
    root, entries = corpus
    served = Served(root / "repos")
    try:
        for key, value in served.filtering.git_env().items():
            monkeypatch.setenv(key, value)
        repos = [
            Repo(f"https://github.com/{e['owner']}/{e['name']}", e["owner"], e["name"], e["pushedAt"])
            for e in entries[:6]
        ]
        outputs = {}
        for mode in ("off", "auto"):
            settings = IngestParams(workers=3, clone_filter=mode, retries=0, cache="")
            rows = ShardRun(repos, 1, 0, tmp_path / mode, settings).run()
            assert {r.status for r in rows} == {"ok"}, [r.error for r in rows]
            outputs[mode] = {p.relative_to(tmp_path / mode): p.read_bytes() for p in (tmp_path / mode).rglob("*.txt")}
        assert len(outputs["auto"]) == 6 and outputs["auto"] == outputs["off"]
    finally:
        served.stop()
    assert fingerprint(IngestParams(clone_filter="off")) == fingerprint(IngestParams(clone_filter="auto"))


def test_clone_filter_param_is_validated() -> None:
    raw = {"feed": {"url": "repos.json"}, "ingest": {"clone_filter": "blob:none"}}
    with pytest.raises(ParamsError, match="ingest.clone_filter must be 'auto'"):
        parse_params(raw)
    assert parse_params({"feed": {"url": "repos.json"}}).ingest.clone_filter == "auto"
