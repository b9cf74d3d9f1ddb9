"""Shared fixtures: sample git repos, a feed on 127.0.0.1, a git spy on PATH, and a DVC workspace."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures.locals3 import LocalS3
from tests.fixtures.s3proxy import S3Proxy
from tests.fixtures.sample import build_corpus
from tests.fixtures.workspace import create_workspace, git_commit
from xgov_digests.core.params import update_params

VENV_BIN = str(Path(sys.executable).parent)
# Whatever a test feeds the pipeline, git never leaves the machine: github.com is rewritten to a closed local port.
OFFLINE_GIT = {
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "url.http://127.0.0.1:9/.insteadOf",
    "GIT_CONFIG_VALUE_0": "https://github.com/",
}
# Every dvc a test starts, whatever environment it is given, sends no usage analytics (DVC would otherwise start a
# daemon per command that posts to dvc.org): tests reach nothing but 127.0.0.1, run through make or by hand.
os.environ["DVC_NO_ANALYTICS"] = "1"
# The shared (S3) digest cache signs its entries with this secret and refuses to start without it: a test-only value.
os.environ.setdefault("XGOV_CACHE_KEY", "test-only-digest-cache-secret-0123456789abcdef")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slow (real dvc repro) tests first, each group in file order: with the Makefile's ``--maxschedchunk 1``
    each free worker takes the next one, and the workers end together on quick tests rather than one of them running
    the longest tests last. The same order on every worker, as xdist requires."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session", autouse=True)
def dvc_site_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """DVC's site cache (its hash state, one folder per workspace path) under the session's temporary folder rather
    than the host's /var/tmp/dvc, which would keep a folder for every workspace a test ever made."""
    os.environ["DVC_SITE_CACHE_DIR"] = str(tmp_path_factory.mktemp("dvc-site-cache"))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """20 sample repos (nested folders, a binary, an oversized file, a symlink, a non-ASCII name)."""
    out = tmp_path_factory.mktemp("corpus")
    return out, build_corpus(out, 20)


def write_feed(path: Path, entries: list[dict]) -> Path:
    path.write_text(json.dumps(entries, indent=1), encoding="utf-8")
    return path


GIT_SPY = """#!/bin/sh
# Records every git call (start and end times), optionally sleeps on clone, then runs the real git. Its variables
# are not GIT_*: the pipeline runs git with none of those inherited.
echo "start $(date +%s.%N) $$ $*" >> "$XGOV_SPY_LOG"
if [ "$1" = "-c" ] && [ -n "$XGOV_SPY_SLEEP" ]; then case "$*" in *" clone "*) sleep "$XGOV_SPY_SLEEP";; esac; fi
"$XGOV_SPY_REAL" "$@"
rc=$?
echo "end $(date +%s.%N) $$ $*" >> "$XGOV_SPY_LOG"
exit $rc
"""


class GitSpy:
    def __init__(self, root: Path) -> None:
        self.bin = root / "spybin"
        self.bin.mkdir()
        self.log = root / "git-calls.log"
        self.log.touch()
        script = self.bin / "git"
        script.write_text(GIT_SPY)
        script.chmod(0o755)

    def env(self, sleep: float = 0) -> dict[str, str]:
        return {
            "PATH": f"{self.bin}:{VENV_BIN}:{os.environ['PATH']}",
            "XGOV_SPY_LOG": str(self.log),
            "XGOV_SPY_REAL": shutil.which("git") or "/usr/bin/git",
            "XGOV_SPY_SLEEP": str(sleep) if sleep else "",
        }

    def clones(self) -> list[str]:
        return [ln for ln in self.log.read_text().splitlines() if ln.startswith("start") and " clone " in ln]

    def clone_intervals(self) -> list[tuple[float, float]]:
        starts, ends = {}, {}
        for line in self.log.read_text().splitlines():
            kind, when, pid, rest = line.split(" ", 3)
            if " clone " in f" {rest} ":
                (starts if kind == "start" else ends)[pid] = float(when)
        return [(starts[p], ends[p]) for p in starts if p in ends]

    def reset(self) -> None:
        self.log.write_text("")


@pytest.fixture
def git_spy(tmp_path: Path) -> GitSpy:
    return GitSpy(tmp_path)


class Workspace:
    """A copy of the project in its own git repo: where tests run ``dvc repro`` and the stage CLIs."""

    def __init__(self, path: Path, extra_env: dict[str, str] | None = None) -> None:
        self.path = path
        self.env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}", DVC_NO_ANALYTICS="1", **OFFLINE_GIT)
        self.env.update(extra_env or {})

    def run(
        self, *cmd: str, check: bool = True, env: dict[str, str] | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            cmd, cwd=self.path, env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
        return result

    def dvc(self, *args: str, **kw) -> subprocess.CompletedProcess[str]:
        return self.run("dvc", *args, **kw)

    def python(self, *args: str, **kw) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, *args, **kw)

    def git(self, *args: str) -> str:
        return self.run("git", *args).stdout

    def set_params(self, **sections: dict) -> None:
        """Update params.yaml, keeping the rest of the file."""
        update_params(self.path / "params.yaml", sections)

    def commit(self, message: str = "update") -> None:
        git_commit(self.path, message)

    def ran_stages(self, output: str) -> list[str]:
        return [ln.split("'")[1] for ln in output.splitlines() if ln.startswith("Running stage '")]


def make_workspace(path: Path, feed: str, extra_env: dict[str, str] | None = None, **ingest) -> Workspace:
    overrides = {
        "feed": {"url": feed},
        "ingest": {"allow_file_urls": True, "workers": 2, "cache": str(path / ".cache" / "digests"), **ingest},
    }
    return Workspace(create_workspace(path, overrides), extra_env)


@pytest.fixture
def workspace_factory(tmp_path: Path):
    def factory(feed: str, name: str = "ws", **kw) -> Workspace:
        return make_workspace(tmp_path / name, feed, **kw)

    return factory


class Reproduced:
    """Workspaces as their first ``dvc repro`` leaves them, built once per session (per pytest-xdist worker) and
    restored for each test that asks: the folder a ``build`` fills (sample repos, feed, workspace with its git
    history, DVC cache and local remote) is copied back from a pristine copy to the same place, so that every
    absolute path in it (params.yaml's feed, the feed's file:// URLs, dvc.lock) holds. DVC's site cache (its hash
    state) is the test's own. Each test gets the files it would have built itself, and nothing another test did."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.envs: dict[str, dict[str, str]] = {}

    def workspace(self, kind: str, build: Callable[[Path, dict[str, str]], Workspace], tmp_path: Path) -> Workspace:
        """``build(folder, env)`` makes the workspace (with ``env`` among its variables) under ``folder``."""
        live, pristine = self.root / kind, self.root / f"{kind}.pristine"
        site_cache = {"DVC_SITE_CACHE_DIR": str(tmp_path / "dvc-site-cache")}
        shutil.rmtree(live, ignore_errors=True)
        if kind not in self.envs:
            ws = build(live, site_cache)
            shutil.copytree(live, pristine, symlinks=True)
            self.envs[kind] = dict(ws.env)
            return ws
        shutil.copytree(pristine, live, symlinks=True)
        return Workspace(live / "ws", {**self.envs[kind], **site_cache})


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> Reproduced:
    return Reproduced(tmp_path_factory.mktemp("reproduced"))


@pytest.fixture(scope="session")
def s3_server():
    """One moto S3 server per session (per pytest-xdist worker), on a free port of 127.0.0.1; tests use their own
    buckets."""
    server = LocalS3()
    yield server
    server.stop()


@pytest.fixture
def proxied(s3_server: LocalS3) -> Iterator[tuple[S3Proxy, str]]:
    """A fault-injecting proxy in front of the session's S3 server, and a bucket of the test's own."""
    proxy = S3Proxy(s3_server.server.get_host_and_port())
    bucket = s3_server.make_bucket(f"px-{uuid.uuid4().hex[:12]}")
    yield proxy, bucket
    proxy.stop()


def point_r2_at(ws: Workspace, s3: LocalS3, bucket: str, prefix: str = "dvc") -> None:
    """Point the workspace's 'r2' remote at the local S3 server, as 'make r2' points it at Cloudflare."""
    ws.dvc("remote", "modify", "r2", "url", f"s3://{bucket}/{prefix}")
    ws.dvc("remote", "modify", "r2", "endpointurl", s3.endpoint)
    ws.env.update(s3.env)


def two_shards(folder: Path, env: dict[str, str]) -> Workspace:
    """Six repos in two shards (three in shard 0) after ``dvc repro``: a ``Reproduced`` build shared by the push
    and cache-drop tests."""
    ws = make_workspace(folder / "ws", str(write_feed(folder / "feed.json", build_corpus(folder / "corpus", 6))), env)
    ws.set_params(shards={"batch_size": 2, "offsets": [0, 1], "assign": "index"})  # index: 3 repos in shard 0
    ws.dvc("repro")
    return ws
