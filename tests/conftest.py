"""Shared fixtures: sample git repos, a feed on 127.0.0.1, a git spy on PATH, and a DVC workspace."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stages.sample import build_corpus

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = str(Path(sys.executable).parent)
PROJECT_FILES = ["stages", "dvc.yaml", "params.yaml", ".dvcignore", ".dvc/config", ".dvc/.gitignore", ".gitignore"]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """20 sample repos (nested folders, a binary, an oversized file, a symlink, a non-ASCII name)."""
    out = tmp_path_factory.mktemp("corpus")
    return out, build_corpus(out, 20)


def write_feed(path: Path, entries: list[dict]) -> Path:
    path.write_text(json.dumps(entries, indent=1), encoding="utf-8")
    return path


GIT_SPY = """#!/bin/sh
# Records every git call (start and end times), optionally sleeps on clone, then runs the real git.
echo "start $(date +%s.%N) $$ $*" >> "$GIT_SPY_LOG"
if [ "$1" = "-c" ] && [ -n "$GIT_SPY_SLEEP" ]; then case "$*" in *" clone "*) sleep "$GIT_SPY_SLEEP";; esac; fi
"$GIT_SPY_REAL" "$@"
rc=$?
echo "end $(date +%s.%N) $$ $*" >> "$GIT_SPY_LOG"
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
            "GIT_SPY_LOG": str(self.log),
            "GIT_SPY_REAL": shutil.which("git") or "/usr/bin/git",
            "GIT_SPY_SLEEP": str(sleep) if sleep else "",
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
        self.env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}", DVC_NO_ANALYTICS="1")
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
        from ruamel.yaml import YAML

        yaml = YAML()
        path = self.path / "params.yaml"
        data = yaml.load(path.read_text())
        for section, values in sections.items():
            for key, value in values.items():
                data[section][key] = value
        with path.open("w") as fh:
            yaml.dump(data, fh)

    def commit(self, message: str = "update") -> None:
        self.git("add", "-A")
        self.git(
            "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", message
        )

    def ran_stages(self, output: str) -> list[str]:
        return [ln.split("'")[1] for ln in output.splitlines() if ln.startswith("Running stage '")]


def make_workspace(path: Path, feed: str, extra_env: dict[str, str] | None = None, **ingest) -> Workspace:
    path.mkdir(parents=True, exist_ok=True)
    for item in PROJECT_FILES:
        src, dst = ROOT / item, path / item
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    ws = Workspace(path, extra_env)
    ws.run("git", "init", "-q", "-b", "main")
    ws.set_params(
        feed={"url": feed},
        ingest={"allow_file_urls": True, "workers": 2, "cache": str(path / ".cache" / "digests"), **ingest},
    )
    ws.commit("workspace")
    return ws


@pytest.fixture
def workspace_factory(tmp_path: Path):
    def factory(feed: str, name: str = "ws", **kw) -> Workspace:
        return make_workspace(tmp_path / name, feed, **kw)

    return factory


class S3Server:
    """moto's S3 server on 127.0.0.1: the stand-in for Cloudflare R2."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.env = {
            "AWS_ACCESS_KEY_ID": "testing-key-id",
            "AWS_SECRET_ACCESS_KEY": "testing-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )

    def make_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def objects(self, bucket: str, prefix: str = "") -> dict[str, str]:
        """key -> ETag of every object under ``prefix``."""
        out = {}
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
        return out

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(scope="session")
def s3_server():
    server = S3Server()
    yield server
    server.stop()


def point_r2_at(ws: Workspace, s3: S3Server, bucket: str, prefix: str = "dvc") -> None:
    """Point the workspace's 'r2' remote at the local S3 server, as 'make r2' points it at Cloudflare."""
    ws.dvc("remote", "modify", "r2", "url", f"s3://{bucket}/{prefix}")
    ws.dvc("remote", "modify", "r2", "endpointurl", s3.endpoint)
    ws.env.update(s3.env)
