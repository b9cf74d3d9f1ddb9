"""Hostile repositories, built by the tests: nothing outside the checkout is read, odd repos never crash a shard."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pandas as pd

from tests.conftest import write_feed
from tests.fixtures.sample import commit, git, make_repo

LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:" + "a" * 64 + "\nsize 12345\n"


def entry(root: Path, name: str) -> dict:
    return {"owner": "hostile", "name": name, "url": (root / name).as_uri(), "pushedAt": "2024-01-01T00:00:00Z"}


def marker(root: Path, name: str) -> Path:
    return root.parent / f"marker-{name}"


def hostile_git_config(root: Path) -> Path:
    """A git config (the machine's, as far as the shard can tell) under which a careless clone runs the repos' code:
    a real ``evil`` filter driver, submodules over file:// and ext:: allowed, submodule recursion on."""
    path = root.parent / "gitconfig"
    path.write_text(
        f'[filter "evil"]\n\tsmudge = "sh -c \'touch {marker(root, "filter")}; cat\'"\n'
        "\tclean = cat\n\trequired = true\n"
        '[protocol "file"]\n\tallow = always\n[protocol "ext"]\n\tallow = always\n[submodule]\n\trecurse = true\n'
    )
    return path


def build(root: Path) -> list[dict]:
    make_repo(
        root / "links",
        {"README.md": "links\n"},
        symlinks={"passwd": "/etc/passwd", "up": "../..", "loop": "loop", "dir-out": "/etc"},
    )
    bad = root / "badnames"
    make_repo(bad, {"README.md": "names\n"})
    (bad / os.fsdecode(b"caf\xe9-latin1.txt")).write_text("latin-1 name\n")
    (bad / os.fsdecode(b"\xff\xfe-junk.txt")).write_text("junk name\n")
    commit(bad, "bad names")
    make_repo(
        root / "filters",
        {
            ".gitattributes": "*.txt filter=evil diff=evil\n*.bin filter=lfs diff=lfs merge=lfs -text\n",
            "a.txt": "filtered?\n",
            "big.bin": LFS_POINTER,
            "b/pointer.dat": LFS_POINTER,
        },
    )
    child_head = make_repo(root / "child", {"child.md": "submodule content\n"})
    parent = root / "submodules"
    make_repo(parent, {"README.md": "parent\n"})
    git(parent, "-c", "protocol.file.allow=always", "submodule", "add", "-q", (root / "child").as_uri(), "vendored")
    # A second submodule, after the first (git stops at a failed one), whose URL runs a command (ext::) that leaves
    # a marker if git ever fetches it.
    (parent / ".gitmodules").write_text(
        f'[submodule "x-evil"]\n\tpath = x-evil\n\turl = ext::sh -c touch% {marker(root, "submodule")}\n'
        + (parent / ".gitmodules").read_text()
    )
    git(parent, "update-index", "--add", "--cacheinfo", f"160000,{child_head},x-evil")
    git(parent, "add", ".gitmodules")
    git(parent, "commit", "-q", "-m", "submodules")  # not commit(): 'git add -A' would drop the gitlink
    make_repo(root / "binary", {"blob.raw": bytes(range(256)) * 100, "img.dat": b"\x89PNG\r\n\x1a\n" + b"\0" * 500})
    git(root, "init", "-q", "empty")
    return [entry(root, n) for n in ("links", "badnames", "filters", "submodules", "binary", "empty")]


def test_the_hostile_git_config_would_run_the_repos_code(tmp_path: Path) -> None:
    """A plain clone under that config runs the filter driver and fetches the ext:: submodule: the test below can
    fail."""
    root = tmp_path / "repos"
    build(root)
    env = dict(os.environ, GIT_CONFIG_GLOBAL=str(hostile_git_config(root)))
    for name, extra in (("filters", []), ("submodules", ["--recurse-submodules"])):
        subprocess.run(
            ["git", "clone", "-q", *extra, (root / name).as_uri(), str(tmp_path / "plain" / name)],
            env=env,
            capture_output=True,
            check=False,
        )
    assert marker(root, "filter").exists() and marker(root, "submodule").exists()


def test_hostile_repositories(workspace_factory, tmp_path: Path) -> None:
    root = tmp_path / "repos"
    feed = write_feed(tmp_path / "feed.json", build(root))
    ws = workspace_factory(str(feed), extra_env={"GIT_CONFIG_GLOBAL": str(hostile_git_config(root))})
    result = ws.python("-m", "stages.shard", "--batch-size", "1", "--offset", "0", "--feed", str(feed))
    assert "Traceback" not in result.stderr
    rows = pd.read_parquet(ws.path / "data/stats/shard-0.parquet").set_index("name")
    assert rows.loc["empty", "status"] == "empty"
    assert set(rows.drop(index="empty")["status"]) == {"ok"}, rows[["status", "error"]]

    def digest(name: str) -> str:
        return (ws.path / f"data/summaries/shard-0/hostile/{name}.txt").read_bytes().decode("utf-8")

    links = digest("links")
    assert "root:" not in links and "SYMLINK: passwd -> passwd" in links and "SYMLINK: up -> .." in links
    assert "hosts" not in links  # /etc is not walked through dir-out
    names = digest("badnames")
    assert "latin-1 name" in names and "junk name" in names
    filters = digest("filters")
    assert "filtered?" in filters and "oid sha256:" in filters  # LFS pointers are kept as they are, never fetched
    assert not marker(root, "filter").exists()  # the machine's filter driver never ran
    sub = digest("submodules")
    assert "submodule content" not in sub and not marker(root, "submodule").exists()
    assert "FILE: blob.raw" in digest("binary") and "FILE: img.dat\n" + "=" * 48 + "\n[Binary file]" in digest("binary")
    assert not (ws.path / "data/summaries/shard-0/hostile/empty.txt").exists()
