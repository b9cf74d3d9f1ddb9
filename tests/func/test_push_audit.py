"""An honest push: after ``dvc push``, every file object of dvc.lock's outputs is on the remote, or make says which not.

Real dvc repro/push/pull, real make, moto's S3 server: one digest object deleted from the bucket (DVC still sees the
folder's .dir object and says "Everything is up to date") is found by the audit, re-uploaded by ``make push``, and a
fresh clone's ``dvc pull`` is then byte-identical.
"""

from __future__ import annotations

import json
import shutil
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import Reproduced, Workspace, point_r2_at, two_shards
from tests.fixtures.locals3 import LocalS3

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parents[1]


def make(ws: Workspace, *args: str, check: bool = True):
    return ws.run("make", "--no-print-directory", "-o", f"{VENV}/.installed", f"VENV={VENV}", *args, check=check)


def digest_objects(ws: Workspace) -> dict[str, str]:
    """md5 -> relpath of the files under data/summaries/shard-0 (from the .dir object in the local cache)."""
    from ruamel.yaml import YAML

    lock = YAML(typ="safe").load((ws.path / "dvc.lock").read_text())
    md5 = next(o["md5"] for o in lock["stages"]["shard@0"]["outs"] if o["path"] == "data/summaries/shard-0")
    listing = json.loads((ws.path / ".dvc/cache/files/md5" / md5[:2] / md5[2:]).read_bytes())
    return {e["md5"]: e["relpath"] for e in listing}


@pytest.fixture
def pushed(reproduced: Reproduced, tmp_path: Path, s3_server: LocalS3) -> tuple[Workspace, str]:
    """Six repos in two shards after dvc repro (built once per worker, a pristine copy for each test), pushed with
    make push to a bucket of the test's own."""
    ws = reproduced.workspace("two-shards", two_shards, tmp_path)
    bucket = s3_server.make_bucket(f"audit-{uuid.uuid4().hex[:12]}")
    point_r2_at(ws, s3_server, bucket)
    ws.dvc("remote", "default", "r2")
    shutil.copy2(ROOT / "Makefile", ws.path / "Makefile")
    ws.commit("run")
    out = make(ws, "push")
    assert "missing 0, re-uploaded 0, still missing 0" in out.stdout
    return ws, bucket


def test_a_file_missing_under_a_present_dir_is_found_and_re_uploaded(
    pushed: tuple[Workspace, str], s3_server: LocalS3, tmp_path: Path
) -> None:
    ws, bucket = pushed
    md5, relpath = next(iter(sorted(digest_objects(ws).items())))
    key = f"dvc/files/md5/{md5[:2]}/{md5[2:]}"
    s3_server.client().delete_object(Bucket=bucket, Key=key)
    assert "Everything is up to date" in ws.dvc("push").stdout  # what DVC alone says
    audit = make(ws, "check-remote", check=False)
    assert audit.returncode != 0
    assert f"data/summaries/shard-0/{relpath}" in audit.stderr and "missing from the remote" in audit.stderr
    assert key not in s3_server.objects(bucket)  # the audit alone writes nothing
    repaired = make(ws, "push")
    assert "missing 1, re-uploaded 1, still missing 0" in repaired.stdout
    assert key in s3_server.objects(bucket)
    assert make(ws, "check-remote").returncode == 0

    clone = Workspace(tmp_path / "clone", ws.env)
    ws.run("git", "clone", "-q", str(ws.path), str(clone.path))
    clone.dvc("pull")
    for path in (ws.path / "data").rglob("*"):
        if path.is_file():
            assert (clone.path / path.relative_to(ws.path)).read_bytes() == path.read_bytes(), path


def test_an_object_in_neither_the_remote_nor_the_cache_fails_the_push_naming_it(
    pushed: tuple[Workspace, str], s3_server: LocalS3
) -> None:
    ws, bucket = pushed
    md5, relpath = next(iter(sorted(digest_objects(ws).items())))
    s3_server.client().delete_object(Bucket=bucket, Key=f"dvc/files/md5/{md5[:2]}/{md5[2:]}")
    (ws.path / ".dvc/cache/files/md5" / md5[:2] / md5[2:]).unlink()
    failed = make(ws, "push", check=False)
    assert failed.returncode != 0
    assert "1 object(s) are missing from the remote" in failed.stderr and relpath in failed.stderr
    assert "dvc repro --force" in failed.stderr
    pull = make(ws, "pull", check=False)  # the audit runs before dvc pull: the same names, no NoSuchKey trace
    assert pull.returncode != 0 and relpath in pull.stderr and "Traceback" not in pull.stderr


def test_make_r2_and_the_remote_check_keep_config_local_private(workspace_factory, s3_server: LocalS3) -> None:
    ws = workspace_factory("feed.json")
    shutil.copy2(ROOT / "Makefile", ws.path / "Makefile")
    make(ws, "r2", "R2_ACCOUNT_ID=acct", "R2_BUCKET=bkt")
    local = ws.path / ".dvc" / "config.local"
    assert local.stat().st_mode & 0o777 == 0o600
    ws.dvc("remote", "modify", "--local", "r2", "access_key_id", "AKIDEXAMPLE")
    assert local.stat().st_mode & 0o777 == 0o600  # DVC keeps the mode of the file it rewrites
    local.chmod(0o644)  # a config.local DVC created under umask 022
    point_r2_at(ws, s3_server, s3_server.make_bucket(f"priv-{uuid.uuid4().hex[:12]}"))
    ws.dvc("remote", "modify", "--local", "r2", "access_key_id", s3_server.env["AWS_ACCESS_KEY_ID"])
    ws.dvc("remote", "modify", "--local", "r2", "secret_access_key", s3_server.env["AWS_SECRET_ACCESS_KEY"])
    checked = ws.run(str(VENV / "bin" / "xgov-digests"), "check-remote", "--access", "-r", "r2")
    assert "made it private (600)" in checked.stderr
    assert local.stat().st_mode & 0o777 == 0o600


VERIFY = """
import json, random, sys
from xgov_digests.operations.check_remote import committed_outputs, open_store, audit
_, store, _ = open_store("r2", 10)
result = audit(store, committed_outputs(), repair=sys.argv[2] == "repair", verify=float(sys.argv[1]),
               rng=random.Random(int(sys.argv[3])))
print(json.dumps({"verified": result.verified, "corrupt": result.corrupt, "repaired": result.repaired,
                  "missing": result.missing, "still_missing": result.still_missing, "expected": len(result.expected)}))
"""


def verify(ws: Workspace, share: float, repair: bool = False, seed: int = 0) -> dict:
    out = ws.python("-c", VERIFY, str(share), "repair" if repair else "no", str(seed))
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_verify_finds_an_object_whose_bytes_differ_and_repair_restores_it(
    pushed: tuple[Workspace, str], s3_server: LocalS3, tmp_path: Path
) -> None:
    """Same key, same size, other bytes: the listing cannot tell; hashing what is stored can."""
    ws, bucket = pushed
    md5, relpath = next(iter(sorted(digest_objects(ws).items())))
    key = f"dvc/files/md5/{md5[:2]}/{md5[2:]}"
    client = s3_server.client()
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    forged = bytes([body[0] ^ 0x20]) + body[1:]
    client.put_object(Bucket=bucket, Key=key, Body=forged)

    listed_only = verify(ws, 0)
    assert listed_only["verified"] == 0 and listed_only["corrupt"] == [] and listed_only["missing"] == []
    # the command: a listing alone passes; --verify 1 names the object and says it is corrupt, not missing
    command = str(VENV / "bin" / "xgov-digests")
    assert ws.run(command, "check-remote").returncode == 0
    checked = ws.run(command, "check-remote", "--verify", "1", check=False)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "corrupt 1" in checked.stdout and relpath in checked.stderr and "corrupt there" in checked.stderr
    assert "'xgov-digests push --verify 1'" in checked.stderr  # a plain push takes the object for present
    bad = ws.run(command, "check-remote", "--verify", "5", check=False)
    assert bad.returncode == 2 and "'5' is not a share between 0 and 1" in bad.stderr
    full = verify(ws, 1.0)
    assert full["verified"] == full["expected"] and full["corrupt"] == [md5]
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == forged  # without repair nothing is written
    # a sample finds it when drawn: at a share of 1/N, each seed draws one object of N
    drawn = [verify(ws, 1 / full["expected"], seed=s) for s in range(3)]
    assert all(d["verified"] == 1 for d in drawn)
    assert all((d["corrupt"] == [md5]) == (d["corrupt"] != []) for d in drawn)
    repaired = verify(ws, 1.0, repair=True)
    assert repaired["repaired"] == [md5] and repaired["still_missing"] == []
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    assert verify(ws, 1.0)["corrupt"] == []
    # the advice works: 'make push' alone leaves a forged object (DVC and the listing see it present), VERIFY=1 heals
    client.put_object(Bucket=bucket, Key=key, Body=forged)
    assert "re-uploaded 0" in make(ws, "push").stdout
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == forged
    healed = make(ws, "push", "VERIFY=1")
    assert "re-uploaded 1" in healed.stdout and "corrupt 1" in healed.stdout, healed.stdout
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    assert make(ws, "check-remote", "VERIFY=1").returncode == 0

    clone = Workspace(tmp_path / "clone", ws.env)
    ws.run("git", "clone", "-q", str(ws.path), str(clone.path))
    clone.dvc("pull")
    assert (clone.path / "data/summaries/shard-0" / relpath).read_bytes() == (
        ws.path / "data/summaries/shard-0" / relpath
    ).read_bytes()


def test_verify_never_uploads_a_local_copy_that_does_not_hash_right(
    pushed: tuple[Workspace, str], s3_server: LocalS3
) -> None:
    ws, bucket = pushed
    md5, _ = next(iter(sorted(digest_objects(ws).items())))
    key = f"dvc/files/md5/{md5[:2]}/{md5[2:]}"
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key=key, Body=b"rotted on the remote")
    local = ws.path / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
    local.chmod(0o644)
    local.write_bytes(b"rotted locally too")
    result = verify(ws, 1.0, repair=True)
    assert result["corrupt"] == [md5] and result["repaired"] == [] and result["still_missing"] == [md5]
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"rotted on the remote"
