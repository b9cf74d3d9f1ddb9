"""Hostile repositories against a whole shard: a digest that never ends, a HEAD naming a missing branch, 1,100 nested
folders; a shard stopped or killed mid-way leaves no process and no checkout; a bug fails the shard; the same bytes
whatever the caller's hash seed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from tests.conftest import Workspace, write_feed
from tests.fixtures.faulty_git import publish_bare, serve_git
from tests.fixtures.sample import commit, git, make_repo
from xgov_digests.clone.cleanup import remove_tree
from xgov_digests.results.report import metrics
from xgov_digests.schemas.stats import read_stats

HANG_PATTERN = "a*a*a*a*a*a*a*a*a*a*a*a*b"  # backtracks for days against a name of 60 'a's


def entry(root: Path, name: str) -> dict:
    return {"owner": "hostile", "name": name, "url": (root / name).as_uri(), "pushedAt": "2024-01-01T00:00:00Z"}


def hang_repo(root: Path) -> dict:
    make_repo(root / "cat", {".gitignore": HANG_PATTERN + "\n", "a" * 60: "", "README.md": "cat\n"})
    return entry(root, "cat")


def build(root: Path) -> list[dict]:
    make_repo(root / "fine", {"README.md": "fine\n"})
    deep = root / "deep"
    make_repo(deep, {"README.md": "deep\n"})
    nested = os.path.join(str(deep), *["d"] * 1100)  # pathlib and os.makedirs recurse on 1,100 parts: mkdir -p
    subprocess.run(["mkdir", "-p", nested], check=True)
    Path(nested, "bottom.txt").write_text("bottom\n")
    commit(deep, "deep")
    make_repo(root / "nohead", {"README.md": "commits on main\n"})
    git(root / "nohead", "symbolic-ref", "HEAD", "refs/heads/gone")
    git(root, "init", "-q", "empty")
    return [hang_repo(root), *(entry(root, n) for n in ("fine", "deep", "nohead", "empty"))]


def shard_cmd(feed: Path) -> list[str]:
    return [sys.executable, "-m", "stages.shard", "--batch-size", "1", "--offset", "0", "--feed", str(feed)]


@pytest.fixture
def repos(tmp_path: Path):
    """Where the test's repos go; removed afterwards (pytest's own clean-up recurses and fails on 1,100 levels)."""
    yield tmp_path / "repos"
    remove_tree(tmp_path / "repos")


@pytest.mark.slow
def test_hostile_repos_in_one_shard(workspace_factory, tmp_path: Path, repos: Path) -> None:
    feed = write_feed(tmp_path / "feed.json", build(repos))
    ws = workspace_factory(str(feed), digest_timeout=2, max_failure_ratio=1.0)
    temp = tmp_path / "tmp"
    temp.mkdir()
    start = time.monotonic()
    result = ws.run(*shard_cmd(feed), env={"TMPDIR": str(temp)}, timeout=60)
    assert time.monotonic() - start < 30
    assert sorted(os.listdir(temp)) == []  # every checkout removed, the 1,100-level one too
    rows = read_stats(ws.path / "data/stats/shard-0.parquet").set_index("name")

    cat = rows.loc["cat"]
    assert cat["status"] == "failed" and cat["error"] == "digest timed out after 2 s"
    assert cat["failure_kind"] == "permanent" and cat["total_s"] < 10
    assert rows.loc["fine", "status"] == "ok"
    deep = rows.loc["deep"]
    assert deep["status"] == "ok" and deep["walk_limit"] == "depth"  # gitingest's depth limit, now on the row
    assert '"walk_limit": "depth"' in result.stderr and "walk stopped early" in result.stderr
    nohead = rows.loc["nohead"]
    assert nohead["status"] == "failed"
    assert "HEAD names a branch that does not exist" in nohead["error"] and "main" in nohead["error"]
    assert rows.loc["empty", "status"] == "empty"
    assert metrics(read_stats(ws.path / "data/stats/shard-0.parquet"), [0])["walk_limited"] == 1
    digest = (ws.path / "data/summaries/shard-0/hostile/deep.txt").read_text()
    assert "FILE: README.md" in digest and "bottom" not in digest


def shard_family(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def wait_for(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def _cpu(p: psutil.Process) -> float:
    try:
        return p.cpu_times().user
    except psutil.Error:
        return 0.0


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_stopping_a_shard_during_a_digest_that_never_ends(workspace_factory, tmp_path: Path, sig) -> None:
    """SIGTERM ends the shard within seconds; after kill -9, its digest processes die with it."""
    feed = write_feed(tmp_path / "feed.json", [hang_repo(tmp_path / "repos")])
    ws = workspace_factory(str(feed), digest_timeout=600)
    temp = tmp_path / "tmp"
    temp.mkdir()
    proc = subprocess.Popen(
        shard_cmd(feed), cwd=ws.path, env={**ws.env, "TMPDIR": str(temp)}, stderr=subprocess.PIPE, text=True
    )
    stuck: list[psutil.Process] = []

    def digest_is_stuck() -> bool:
        stuck[:] = [p for p in shard_family(proc.pid) if _cpu(p) > 1.0]
        return bool(stuck)

    wait_for(digest_is_stuck)
    family = shard_family(proc.pid)
    start = time.monotonic()
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode != 0
    if sig == signal.SIGTERM:
        assert time.monotonic() - start < 5
        assert "stopping" in stderr
    wait_for(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in family), timeout=5)
    if sig == signal.SIGTERM:
        assert os.listdir(temp) == []


def git_processes_for(port: str) -> list[str]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "git" in cmd and port in cmd:
            found.append(cmd)
    return found


def test_kill_9_of_a_shard_kills_its_clones(workspace_factory, tmp_path: Path) -> None:
    """A clone hanging on the server, then kill -9 of the shard: git and its helpers are gone within seconds."""
    src = tmp_path / "src"
    make_repo(src, {"README.md": "x\n"})
    root = tmp_path / "srv"
    publish_bare(src, root, "good", "repo")
    feed = write_feed(
        tmp_path / "feed.json",
        [
            {"owner": "hang", "name": f"r{i}", "url": f"https://github.com/hang/r{i}", "pushedAt": "2024-01-01"}
            for i in range(2)
        ],
    )
    with serve_git(root) as server:
        ws = workspace_factory(str(feed), extra_env=server.insteadof_env(), clone_timeout=300)
        port = server.base.rsplit(":", 1)[1]
        proc = subprocess.Popen(shard_cmd(feed), cwd=ws.path, env=ws.env, stderr=subprocess.DEVNULL)
        helpers = lambda: {c.split()[-1] for c in git_processes_for(port) if "git-remote-http" in c}  # noqa: E731
        wait_for(lambda: len(helpers()) == 2)  # both clones are in git's HTTP helper, waiting on the server
        proc.kill()
        proc.wait()
        wait_for(lambda: git_processes_for(port) == [], timeout=5)


@pytest.mark.slow
def test_a_bug_fails_the_shard(workspace_factory, tmp_path: Path) -> None:
    """An exception the per-repo code does not expect: logged with its traceback, failure_kind internal, exit 1."""
    root = tmp_path / "repos"
    make_repo(root / "fine", {"README.md": "fine\n"})
    make_repo(root / "other", {"README.md": "other\n"})
    feed = write_feed(tmp_path / "feed.json", [entry(root, "fine"), entry(root, "other")])
    ws = workspace_factory(str(feed), max_failure_ratio=1.0)
    (ws.path / "data/summaries/shard-0/hostile/fine.txt").mkdir(parents=True)  # writing the digest will raise
    result = ws.run(*shard_cmd(feed), check=False)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "IsADirectoryError" in result.stderr
    assert "internal error (a bug" in result.stderr
    rows = pd.read_parquet(ws.path / "data/stats/shard-0.parquet").set_index("name")
    assert rows.loc["fine", "failure_kind"] == "internal" and rows.loc["other", "status"] == "ok"


def seeded_digest(ws: Workspace, feed: Path, seed: str) -> bytes:
    ws.run(*shard_cmd(feed), env={"PYTHONHASHSEED": seed})
    return (ws.path / "data/summaries/shard-0/hostile/seed.txt").read_bytes()


@pytest.mark.slow
def test_same_bytes_under_any_hash_seed(workspace_factory, tmp_path: Path) -> None:
    """gitingest resolves negations against its built-in patterns in set order, which follows str hashing: the
    shard CLI re-executes itself with a fixed seed, so two runs under different seeds write the same bytes."""
    root = tmp_path / "repos"
    make_repo(
        root / "seed",
        {
            ".gitignore": "!*.log\n!*.pyc\n!dist/\n!*.min.js\n!*.egg-info\n!.env\n",
            "keep.log": "a\n",
            "x.pyc": "b\n",
            "dist/a.js": "c\n",
            "a.min.js": "d\n",
            ".env": "e\n",
        },
    )
    probe = (
        "import sys; from pathlib import Path; from xgov_digests.digest.format import Header; "
        "from xgov_digests.digest.build import make_digest; "
        f"sys.stdout.write(make_digest(Path({str(root / 'seed')!r}), Header('o', 'n', 'u', 'c', None), "
        "max_file_size=10**6, max_summary_bytes=10**6).data.hex())"
    )
    raw = {
        s: subprocess.run(
            [sys.executable, "-c", probe],
            env={**os.environ, "PYTHONHASHSEED": s},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for s in ("1", "2")
    }
    assert raw["1"] != raw["2"]  # without the pin, the seed changes this repo's digest
    feed = write_feed(tmp_path / "feed.json", [entry(root, "seed")])
    ws = workspace_factory(str(feed), cache="")  # no digest cache: the second run digests again
    assert seeded_digest(ws, feed, "1") == seeded_digest(ws, feed, "2")
