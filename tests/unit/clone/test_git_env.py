"""Hermetic git: the caller's git environment and git config cannot point a clone at another repository or change
the bytes it checks out, in either clone strategy; URL rewriting and credential helpers still apply."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.gitserver import GitServer, Reply, Request
from tests.fixtures.sample import git, make_repo
from tests.fixtures.served import HEADER, publish
from xgov_digests.clone.git import CloneError
from xgov_digests.clone.strategy import clone_repo
from xgov_digests.core.params import CloneSettings
from xgov_digests.digest.build import make_digest

MAX = 1000
LATIN1_NAME = os.fsdecode(b"caf\xe9.txt")  # not UTF-8: git prints it quoted unless core.quotePath=false
FILES: dict[str, str | bytes] = {
    "lf.txt": "123456789\n" * 99,  # 990 bytes: CRLF on checkout would make it 1089, over MAX
    LATIN1_NAME: "latin-1 name\n",
    "src/app.py": "print('hi')\n",
    ".gitattributes": "*.dat filter=evil\n",
    "x.dat": "data\n",
}


def _digest(url: str, dest: Path, mode: str) -> bytes:
    checkout = clone_repo(url, dest, CloneSettings(clone_filter=mode, clone_timeout=60, retries=0, max_file_size=MAX))
    return make_digest(checkout.path, HEADER, max_file_size=MAX, max_summary_bytes=10**7).data


@pytest.fixture
def server(tmp_path: Path):
    make_repo(tmp_path / "src", FILES, symlinks={"link": "lf.txt"})
    publish(tmp_path / "src", tmp_path / "srv")
    with GitServer(tmp_path / "srv", lifetime=300) as srv:
        yield srv


@pytest.fixture
def clean_digest(server: GitServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """The digest under an empty HOME: what every other environment must give."""
    home = tmp_path / "clean-home"
    home.mkdir()
    with monkeypatch.context() as m:
        m.setenv("HOME", str(home))
        m.setenv("XDG_CONFIG_HOME", str(home / ".config"))
        data = _digest(f"{server.url}org/repo", tmp_path / "clean" / "repo", "off")
    assert b"FILE: lf.txt" in data and b"latin-1 name" in data and b"\r\n" not in data
    return data


def _project(path: Path) -> tuple[str, str]:
    """A repository standing for the project a deploy script runs in: (its HEAD, its objects count)."""
    make_repo(path, {"own.txt": "the project's own file\n"})
    git(path, "remote", "add", "origin", "https://example.invalid/project.git")
    return git(path, "rev-parse", "HEAD"), git(path, "count-objects", "-v")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["off", "auto"])
def test_exported_git_variables_reach_no_other_repository(
    server: GitServer, clean_digest: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    project = tmp_path / "project"
    head, objects = _project(project)
    dotgit = project / ".git"
    forms = [
        ({"GIT_DIR": str(dotgit)}, project),
        ({"GIT_DIR": "."}, dotgit),  # what git sets for a bare repository's hooks
        ({"GIT_WORK_TREE": str(project), "GIT_INDEX_FILE": str(dotgit / "index")}, project),
        ({"GIT_OBJECT_DIRECTORY": str(dotgit / "objects"), "GIT_COMMON_DIR": str(dotgit)}, project),
        ({"GIT_ALTERNATE_OBJECT_DIRECTORIES": str(dotgit / "objects"), "GIT_NAMESPACE": "other"}, project),
        ({"GIT_CONFIG": str(dotgit / "config"), "GIT_TEMPLATE_DIR": str(tmp_path / "none")}, project),
        ({"GIT_TRACE": str(tmp_path / "trace"), "GIT_TRACE_PACKET": "1", "GIT_CURL_VERBOSE": "1"}, project),
        ({"GIT_ATTR_NOSYSTEM": "0", "GIT_LITERAL_PATHSPECS": "1", "GIT_ICASE_PATHSPECS": "1"}, project),
    ]
    for i, (variables, cwd) in enumerate(forms):
        with monkeypatch.context() as m:
            m.setenv("HOME", str(tmp_path / "clean-home"))
            for key, value in variables.items():
                m.setenv(key, value)
            m.chdir(cwd)
            data = _digest(f"{server.url}org/repo", tmp_path / f"c{i}" / "repo", mode)
        assert data == clean_digest, variables
    assert not (tmp_path / "trace").exists()
    assert git(project, "rev-parse", "HEAD") == head and git(project, "count-objects", "-v") == objects
    assert git(project, "config", "remote.origin.url") == "https://example.invalid/project.git"
    assert git(project, "status", "--porcelain") == ""


def _hostile_home(home: Path) -> None:
    """A HOME whose git config and attributes would change every checkout, run hooks and a filter."""
    (home / "tpl" / "hooks").mkdir(parents=True)
    (home / "hooks").mkdir()
    for hook in (home / "tpl" / "hooks" / "post-checkout", home / "hooks" / "post-checkout"):
        hook.write_text(f"#!/bin/sh\ntouch {home}/hook-ran\n")
        hook.chmod(0o755)
    (home / "attributes").write_text("* text eol=crlf ident\n")
    (home / ".config" / "git").mkdir(parents=True)
    (home / ".config" / "git" / "attributes").write_text("* text eol=crlf\n")
    (home / ".gitconfig").write_text(
        "[core]\n autocrlf = true\n eol = crlf\n quotePath = false\n symlinks = false\n ignoreCase = true\n"
        f" attributesFile = {home}/attributes\n hooksPath = {home}/hooks\n sparseCheckoutCone = true\n"
        " sparseCheckout = true\n"
        f"[init]\n templateDir = {home}/tpl\n"
        "[clone]\n defaultRemoteName = upstream\n"
        "[submodule]\n recurse = true\n"
        "[checkout]\n workers = 4\n"
        f'[filter "evil"]\n smudge = "touch {home}/filter-ran; cat"\n required = true\n'
        "[color]\n ui = always\n"
    )


@pytest.mark.parametrize("mode", ["off", "auto"])
def test_user_git_config_cannot_change_the_checkout(
    server: GitServer, clean_digest: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    home = tmp_path / "home"
    _hostile_home(home)
    forms = [
        {},  # the config files alone
        {"GIT_CONFIG_PARAMETERS": "'core.autocrlf'='true' 'core.eol'='crlf'"},  # as `git -c` passes it on
        {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "core.autocrlf", "GIT_CONFIG_VALUE_0": "true"},
        {"GIT_CONFIG_GLOBAL": str(home / ".gitconfig"), "GIT_CONFIG_SYSTEM": str(home / ".gitconfig")},
    ]
    for i, variables in enumerate(forms):
        with monkeypatch.context() as m:
            m.setenv("HOME", str(home))
            m.setenv("XDG_CONFIG_HOME", str(home / ".config"))
            m.delenv("GIT_CONFIG_NOSYSTEM", raising=False)
            for key, value in variables.items():
                m.setenv(key, value)
            data = _digest(f"{server.url}org/repo", tmp_path / f"c{i}" / "repo", mode)
        assert data == clean_digest, variables
        assert (tmp_path / f"c{i}" / "repo" / "link").is_symlink()
    assert not (home / "hook-ran").exists() and not (home / "filter-ran").exists()


class NeedsPassword(GitServer):
    """Answers 401 unless the request carries user ``u`` and password ``s3cret`` (HTTP basic)."""

    def before(self, request: Request) -> Reply | None:
        if request.header("Authorization") != "Basic dTpzM2NyZXQ=":
            return Reply(401, [("WWW-Authenticate", 'Basic realm="git"'), ("Content-Type", "text/plain")], b"no\n")
        return None


@pytest.mark.parametrize("mode", ["off", "auto"])
def test_user_url_rewriting_and_credential_helper_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    make_repo(tmp_path / "src", {"a.py": "a = 1\n"})
    publish(tmp_path / "src", tmp_path / "srv")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for key in [k for k in os.environ if k.startswith("GIT_CONFIG")]:
        monkeypatch.delenv(key)
    with NeedsPassword(tmp_path / "srv", lifetime=120) as server:
        rewrite = f'[url "{server.url}"]\n insteadOf = https://github.com/\n'
        (home / ".gitconfig").write_text(rewrite)
        with pytest.raises(CloneError) as refused:
            clone_repo(
                "https://github.com/org/repo",
                tmp_path / "no" / "repo",
                CloneSettings(clone_filter=mode, clone_timeout=30, retries=0),
            )
        assert refused.value.kind == "permanent"
        helper = "!f() { echo username=u; echo password=s3cret; }; f"
        (home / ".gitconfig").write_text(rewrite + f'[credential]\n helper = "{helper}"\n')
        checkout = clone_repo(
            "https://github.com/org/repo", tmp_path / "yes" / "repo", CloneSettings(clone_filter=mode, clone_timeout=30)
        )
        assert (checkout.path / "a.py").read_text() == "a = 1\n"
    config = subprocess.run(
        ["git", "-C", str(checkout.path), "config", "--list", "--local"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "HOME": str(home)},
    ).stdout
    assert "s3cret" not in config
