"""Plain DVC against R2: after ``make r2``, ``dvc push``/``pull``/``status -c``/``get``/``import``/``gc -c`` work with
credentials given the ways dvc-s3 reads them, and R2's checksum settings reach botocore through the remote's
``configpath``. R2 is moto behind a proxy that refuses botocore's default flexible checksums as R2 does."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import botocore
import pytest

from tests.conftest import OFFLINE_GIT, VENV_BIN, Workspace, write_feed
from tests.fixtures.locals3 import LocalS3
from tests.fixtures.r2proxy import R2Proxy
from tests.fixtures.sample import build_corpus

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parents[1]
KEY, SECRET = LocalS3.env["AWS_ACCESS_KEY_ID"], LocalS3.env["AWS_SECRET_ACCESS_KEY"]
CREDS = {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET}


def outputs(root: Path) -> dict[str, str]:
    files = [p for p in sorted((root / "data").rglob("*")) if p.is_file() and p.name != ".gitignore"]
    files.append(root / "reports/metrics.json")
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """Only what a user sets: no AWS_*/R2_* variable but ``extra``, a HOME of its own (no ~/.aws of the machine)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "R2_", "BOTO"))}
    env.update(PATH=f"{VENV_BIN}:{os.environ['PATH']}", HOME=str(home), DVC_NO_ANALYTICS="1", **OFFLINE_GIT, **extra)
    return env


def clone(origin: Workspace, dest: Path, env: dict[str, str]) -> Workspace:
    origin.run("git", "clone", "-q", str(origin.path), str(dest))
    ws = Workspace(dest)
    ws.env = env
    return ws


def test_botocore_sends_flexible_checksums_by_default() -> None:
    """What makes the test below meaningful: without R2's settings botocore would send what R2 refuses."""
    assert tuple(int(x) for x in botocore.__version__.split(".")[:2]) >= (1, 36), botocore.__version__


@pytest.mark.timeout(1500)  # a dozen dvc commands, each a few seconds on a loaded machine
def test_plain_dvc_round_trip_through_r2s_checksum_rules(tmp_path: Path, workspace_factory, s3_server) -> None:
    bucket = s3_server.make_bucket(f"plain-{tmp_path.name.lower().replace('_', '-')[:40]}")
    proxy = R2Proxy(s3_server.endpoint)
    home = tmp_path / "home"
    home.mkdir()
    entries = build_corpus(tmp_path / "corpus", 6)
    ws = workspace_factory(str(write_feed(tmp_path / "feed.json", entries)))
    ws.env = clean_env(home, **CREDS)
    ws.set_params(shards={"batch_size": 3, "offsets": [0, 1, 2]})
    ws.dvc("repro")

    # the remote as it was before make r2 wrote R2's settings: R2 refuses the upload
    ws.dvc("remote", "modify", "r2", "url", f"s3://{bucket}/dvc")
    ws.dvc("remote", "modify", "r2", "endpointurl", proxy.endpoint)
    ws.dvc("remote", "modify", "r2", "--unset", "configpath")
    ws.dvc("remote", "default", "r2")
    refused = ws.dvc("push", check=False)
    assert refused.returncode != 0 and proxy.take_rejected(), refused.stdout + refused.stderr

    shutil.copy2(ROOT / "Makefile", ws.path / "Makefile")
    ws.run(
        "make",
        "--no-print-directory",
        "-o",
        f"{VENV}/.installed",
        f"VENV={VENV}",
        "r2",
        f"R2_BUCKET={bucket}",
        f"R2_ENDPOINT={proxy.endpoint}",
    )
    assert (ws.path / ".dvc/r2-aws.config").read_text().count("request_checksum_calculation = when_required") == 2
    assert "configpath = r2-aws.config" in (ws.path / ".dvc/config").read_text()
    ws.commit("run, remote r2")
    assert ws.git("status", "--porcelain") == ""

    # 1. credentials in the environment: plain dvc push, dvc status -c
    ws.dvc("push")
    assert "in sync" in ws.dvc("status", "-c").stdout
    assert proxy.take_rejected() == []
    expected = outputs(ws.path)

    # a fresh clone pulls everything, byte-identical
    a = clone(ws, tmp_path / "clone-env", clean_env(home, **CREDS))
    a.dvc("pull")
    assert outputs(a.path) == expected

    # 2. credentials in .dvc/config.local (git-ignored), nothing in the environment
    b = clone(ws, tmp_path / "clone-local", clean_env(home))
    b.dvc("remote", "modify", "--local", "r2", "access_key_id", KEY)
    b.dvc("remote", "modify", "--local", "r2", "secret_access_key", SECRET)
    b.dvc("pull")
    assert outputs(b.path) == expected and b.git("status", "--porcelain") == ""

    # 3. an AWS profile: keys in ~/.aws/credentials under [r2], R2's settings from the project's [profile r2]
    (home / ".aws").mkdir()
    (home / ".aws/credentials").write_text(f"[r2]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n")
    c = clone(ws, tmp_path / "clone-profile", clean_env(home))
    c.dvc("remote", "modify", "--local", "r2", "profile", "r2")
    c.dvc("pull")
    assert outputs(c.path) == expected
    assert proxy.take_rejected() == []

    # without the project's AWS config file the download is refused too (botocore asks for checksums back)
    d = clone(ws, tmp_path / "clone-noconfig", clean_env(home, **CREDS))
    (tmp_path / "empty.config").write_text("")
    d.dvc("remote", "modify", "--local", "r2", "configpath", str(tmp_path / "empty.config"))
    assert d.dvc("pull", check=False).returncode != 0
    assert {h for _, _, h in proxy.take_rejected()} == {"x-amz-checksum-mode"}

    # dvc get / dvc import from another directory: the configpath resolves inside DVC's clone of the project
    outside = tmp_path / "consumer"
    outside.mkdir()
    consumer = Workspace(outside)
    consumer.env = clean_env(home)
    consumer.dvc("get", str(ws.path), "data/index.json", "-o", "index.json", "--remote-config", "profile=r2")
    assert (outside / "index.json").read_bytes() == (ws.path / "data/index.json").read_bytes()
    consumer.run("git", "init", "-q")
    consumer.dvc("init", "-q")
    consumer.env = clean_env(home, **CREDS)
    consumer.dvc("import", str(ws.path), "data/stats.parquet", "-o", "stats.parquet")
    assert (outside / "stats.parquet").read_bytes() == (ws.path / "data/stats.parquet").read_bytes()
    assert KEY not in (outside / "stats.parquet.dvc").read_text()
    assert proxy.take_rejected() == []

    # dvc gc -c removes from the remote what no commit uses, and only that
    orphan = f"dvc/files/md5/00/{'0' * 30}"
    s3_server.client().put_object(Bucket=bucket, Key=orphan, Body=b"unused")
    before = set(s3_server.objects(bucket, "dvc/"))
    ws.dvc("gc", "-c", "-w", "-f")
    assert set(s3_server.objects(bucket, "dvc/")) == before - {orphan}
    assert "in sync" in ws.dvc("status", "-c").stdout
    assert proxy.take_rejected() == []
    proxy.stop()
