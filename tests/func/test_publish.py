"""``xgov-digests publish`` against moto's S3 server on 127.0.0.1, the stand-in for Cloudflare R2.

The publisher talks to moto through a small recording proxy (also on 127.0.0.1) that counts every request and can
fail or hold chosen PUTs: that is how the tests see exactly what was uploaded, in which order, and how a publish is
cut off half-way. The tests themselves read the bucket with boto3, straight from moto.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.fixtures.publish_site import LEASE, S3, XGOV_DIGESTS, Site, lease_requests, puts, summary, writes

pytestmark = pytest.mark.slow  # each test runs the publish CLI against S3 (moto), several seconds


# --- the tests -----------------------------------------------------------------------------------------------


def test_first_publish_uploads_every_digest_with_metadata(site: Site) -> None:
    repos = site.add(12)
    site.write()
    result = site.publish()
    assert summary(result) == {
        "uploaded": "12",
        "restored": "0",
        "unchanged": "0",
        "kept": "0",
        "pruned": "0",
        "failed": "0",
        "bytes": str(sum(len(r.text().encode()) for r in repos)),
        "index": "written",
    }
    assert f"s3://{site.bucket}/summaries" in result.stdout  # publish.bucket empty: the DVC remote's bucket
    client = site.s3.client()
    for r in repos:
        head = client.head_object(Bucket=site.bucket, Key=r.key)
        body = r.text().encode()
        assert head["ContentType"] == "text/plain; charset=utf-8"
        assert head["Metadata"] == {
            "url": r.url,
            "pushed-at": r.pushed_at,
            "commit": r.commit,
            "sha256": hashlib.sha256(body).hexdigest(),
        }
        assert client.get_object(Bucket=site.bucket, Key=r.key)["Body"].read() == body
    listing = site.listing()
    assert site.index() == {
        r.key: {
            "sha256": hashlib.sha256(r.text().encode()).hexdigest(),
            "commit": r.commit,
            "pushedAt": r.pushed_at,
            "url": r.url,
            "bytes": len(r.text().encode()),
            "tokens": r.tokens,
            "etag": listing[r.key][0].strip('"'),
        }
        for r in repos
    }
    assert set(listing) == {r.key for r in repos} | {"summaries/_index.json"}  # the lease is gone
    requests = site.s3.proxy.take()
    assert not [r for r in requests if r.method == "HEAD"], "no per-object HEAD requests"
    keys = puts(requests, site.bucket)
    assert sorted(keys[:-1]) == sorted(r.key for r in repos) and keys[-1] == "summaries/_index.json"
    assert lease_requests(requests)[0] == "PUT" and lease_requests(requests)[-1] == "DELETE"


def test_publish_reads_the_stats_without_loading_pandas(site: Site) -> None:
    """The rows of data/stats.parquet are read with pyarrow alone: pandas is half a second of every publish."""
    site.add(3)
    site.write()
    result = site.publish(env={"PYTHONPROFILEIMPORTTIME": "1"})
    loaded = {ln.rsplit("|", 1)[1].strip() for ln in result.stderr.splitlines() if ln.startswith("import time:")}
    assert "pyarrow.parquet" in loaded and summary(result)["uploaded"] == "3"
    assert "pandas" not in loaded


@pytest.mark.parametrize(
    "damage, message",
    [("drop", "lacks columns ['status']"), ("null", "has rows without ['owner']"), ("garbage", "stats.parquet")],
)
def test_a_damaged_stats_file_is_named_and_nothing_is_published(site: Site, damage: str, message: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    site.add(3)
    site.write()
    path = site.path / "data" / "stats.parquet"
    table = pq.read_table(path)
    if damage == "drop":
        pq.write_table(table.drop_columns(["status"]), path)
    elif damage == "null":
        owners = table.column("owner").to_pylist()
        index = table.schema.get_field_index("owner")
        pq.write_table(table.set_column(index, "owner", pa.array([owners[0], None, owners[2]], pa.string())), path)
    else:
        path.write_bytes(b"PAR1 not a parquet file")
    site.lock()  # dvc.lock records the damaged file: the run is finished, the file is what is wrong
    result = site.publish(expect=2)
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert writes(site.s3.proxy.take()) == [] and site.listing() == {}


def test_second_publish_uploads_nothing_and_one_change_uploads_one(site: Site) -> None:
    repos = site.add(20)
    site.write()
    site.publish()
    before = site.listing()

    again = site.publish()
    assert summary(again)["uploaded"] == "0" and summary(again)["unchanged"] == "20"
    assert summary(again)["index"] == "unchanged"
    requests = site.s3.proxy.take()
    assert writes(requests) == [] and not [r for r in requests if r.method == "HEAD"]
    assert lease_requests(requests) == []  # nothing to write: no lease either
    assert site.listing() == before

    changed = repos[7]
    site.change(changed)
    site.write()
    result = site.publish()
    s = summary(result)
    assert (s["uploaded"], s["unchanged"], s["index"]) == ("1", "19", "written")
    assert s["bytes"] == str(len(changed.text().encode()))
    assert puts(site.s3.proxy.take(), site.bucket) == [changed.key, "summaries/_index.json"]
    after = site.listing()
    moved = {k for k in after if after[k] != before[k]}
    assert moved == {changed.key, "summaries/_index.json"}  # ETag and LastModified of the rest untouched
    head = site.s3.client().head_object(Bucket=site.bucket, Key=changed.key)
    assert head["Metadata"]["commit"] == changed.commit and head["Metadata"]["pushed-at"] == changed.pushed_at
    assert site.index()[changed.key]["sha256"] == hashlib.sha256(changed.text().encode()).hexdigest()


def test_an_index_without_token_counts_gains_them_with_no_upload(site: Site) -> None:
    """An index published before entries carried tokens (or counted with another encoding): the next publish
    rewrites the index alone; the objects, whose bytes did not change, are not uploaded again."""
    repos = site.add(6)
    site.write()
    site.publish()
    before = site.listing()
    old = {k: {f: v for f, v in e.items() if f != "tokens"} for k, e in site.index().items()}
    old[repos[0].key]["tokens"] = 7  # a count made with another encoding
    site.s3.client().put_object(
        Bucket=site.bucket, Key="summaries/_index.json", Body=(json.dumps(old, sort_keys=True) + "\n").encode()
    )

    result = site.publish()
    s = summary(result)
    assert (s["uploaded"], s["unchanged"], s["index"]) == ("0", "6", "written")
    assert puts(site.s3.proxy.take(), site.bucket) == ["summaries/_index.json"]
    assert {k: v for k, v in site.listing().items() if k != "summaries/_index.json"} == {
        k: v for k, v in before.items() if k != "summaries/_index.json"
    }
    assert {k: e["tokens"] for k, e in site.index().items()} == {r.key: r.tokens for r in repos}


def test_prune_removes_only_dropped_repos(site: Site) -> None:
    repos = site.add(10)
    site.write()
    site.publish()
    client = site.s3.client()
    client.put_object(Bucket=site.bucket, Key="dvc/files/md5/ab/cdef0123", Body=b"dvc cache")  # the DVC remote
    client.put_object(Bucket=site.bucket, Key="summaries/README.md", Body=b"not a digest")
    dropped = repos[3]
    del site.repos[dropped.key]
    site.write()

    kept = site.publish()  # without --prune nothing is deleted, and the count is printed
    assert "1 object(s) of repos no longer in the snapshot kept (--prune deletes them)" in kept.stdout
    assert summary(kept)["pruned"] == "0" and dropped.key in site.listing() and dropped.key in site.index()
    before = site.listing()

    pruned = site.publish("--prune")
    assert "publish: 1 object(s) of repos no longer in the snapshot to prune" in pruned.stdout
    assert summary(pruned)["pruned"] == "1" and summary(pruned)["uploaded"] == "0"
    after = site.listing()
    assert set(before) - set(after) == {dropped.key}
    assert {k: v for k, v in before.items() if k not in (dropped.key, "summaries/_index.json")} == {
        k: v for k, v in after.items() if k != "summaries/_index.json"
    }
    assert set(site.index()) == {r.key for r in repos} - {dropped.key}
    requests = site.s3.proxy.take()
    assert [(r.method, r.query.startswith("delete")) for r in writes(requests)] == [("PUT", False), ("POST", True)]
    assert puts(requests, site.bucket) == ["summaries/_index.json"]  # the index before the delete

    assert summary(site.publish("--prune"))["pruned"] == "0"  # nothing left to prune
    assert writes(site.s3.proxy.take()) == []


def test_dry_run_changes_nothing(site: Site) -> None:
    repos = site.add(8)
    site.set_publish(max_prune_ratio=0.2)  # 1 of 8
    site.write()
    site.publish()
    before = site.state()
    site.change(repos[1])
    del site.repos[repos[2].key]
    added = site.add(1, owner="new")[0]
    site.write()

    result = site.publish("--dry-run", "--prune")
    assert f"would upload {repos[1].key} (changed" in result.stdout
    assert f"would upload {added.key} (new" in result.stdout
    assert f"would delete {repos[2].key}" in result.stdout
    assert "would write summaries/_index.json" in result.stdout
    assert "would upload 2 (1 new, 0 restored)" in result.stdout and "would prune 1" in result.stdout
    assert writes(site.s3.proxy.take()) == []
    assert site.state() == before

    assert summary(site.publish("--prune"))["uploaded"] == "2"  # and the real run does what the dry run said


def test_failed_repo_keeps_its_object_and_entry(site: Site) -> None:
    repos = site.add(6)
    site.write()
    site.publish()
    before, index_before = site.listing(), site.index()
    failing, emptied = repos[4], repos[1]
    failing.status = "failed"  # tonight's clone failed: no digest file, a failed row
    emptied.status = "empty"  # no digest either: what was published stays too
    site.write()
    assert not site.digest_path(failing).exists() and not site.digest_path(emptied).exists()

    result = site.publish("--prune")
    s = summary(result)
    assert (s["uploaded"], s["unchanged"], s["kept"], s["pruned"]) == ("0", "4", "2", "0")
    assert site.listing() == before
    assert site.index() == index_before
    assert writes(site.s3.proxy.take()) == []

    failing.status, failing.version, emptied.status = "ok", 2, "ok"  # the next night: a new commit, and as before
    site.write()
    assert summary(site.publish())["uploaded"] == "1"
    assert puts(site.s3.proxy.take(), site.bucket) == [failing.key, "summaries/_index.json"]


def test_failed_upload_is_named_and_retried_next_time(site: Site) -> None:
    repos = site.add(6)
    site.write()
    site.publish()
    index_before = site.index()
    bad, good = repos[2], repos[5]
    site.change(bad, good)
    site.write()
    site.s3.proxy.fail = {f"/{site.bucket}/{bad.key}"}

    result = site.publish(expect=1)
    s = summary(result)
    assert (s["uploaded"], s["failed"], s["index"]) == ("1", "1", "written")
    assert bad.key in result.stderr and "InternalError" in result.stderr
    keys = puts(site.s3.proxy.take(), site.bucket)
    assert keys.count(bad.key) == 3  # botocore's bounded attempts: 3 in all
    index = site.index()
    assert index[bad.key] == index_before[bad.key]  # the old object is still there, so is its entry
    assert index[good.key]["commit"] == good.commit

    site.s3.proxy.fail = set()
    retry = site.publish()
    assert summary(retry)["uploaded"] == "1"
    assert puts(site.s3.proxy.take(), site.bucket) == [bad.key, "summaries/_index.json"]
    assert site.index()[bad.key]["commit"] == bad.commit


def test_killed_publish_converges_to_a_clean_publish(site: Site) -> None:
    repos = site.add(40)
    site.write()
    site.publish()
    index_before = site.index()
    site.change(*repos[:30])
    del site.repos[repos[35].key]
    site.write()

    proxy = site.s3.proxy
    proxy.hold_after = 11  # the lease and ten digests reach the bucket, later PUTs hang: then the publisher is killed
    proc = site.start("--jobs", "4", "--prune")
    deadline = time.monotonic() + 60
    while proxy.held == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proxy.held > 0, f"the publish never reached the hold point:\n{proc.communicate()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    deadline = time.monotonic() + 30
    while proxy.forwarded_puts < 11 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proxy.forwarded_puts == 11
    state = site.state()
    new_bodies = {r.key for r in repos[:30] if state[r.key][0] == r.text().encode()}
    assert len(new_bodies) == 10  # half-way: ten new objects …
    assert site.index() == index_before  # … and the old index, which still names only complete objects
    proxy.reset()

    resumed = site.publish("--prune", "--wait", "0", expect=1)  # the killed publish's lease has not expired
    assert "another publish" in resumed.stderr and "holds s3://" in resumed.stderr
    expired = json.dumps({"holder": "killed:1", "ttl": 1}).encode()  # its 15 minutes, shortened to 1 s
    site.s3.client().put_object(Bucket=site.bucket, Key=LEASE, Body=expired)  # expires by the bucket's clock
    resumed = site.publish("--prune")
    assert "taking over an expired publish lease" in resumed.stderr
    assert summary(resumed)["pruned"] == "1"
    second = f"pub-{uuid.uuid4().hex[:12]}"
    site.s3.client().create_bucket(Bucket=second)
    site.set_publish(bucket=second)
    clean = site.publish()
    assert summary(clean)["uploaded"] == str(len(site.repos))
    assert site.state() == site.state(second)
    assert site.index() == site.index(second)


def test_missing_credentials_exit_2_naming_the_variables(site: Site) -> None:
    site.add(2)
    site.write()
    env = {k: v for k, v in site.env.items() if not k.startswith(("AWS_ACCESS", "AWS_SECRET"))}
    result = subprocess.run(
        [XGOV_DIGESTS, "publish"],
        cwd=site.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    for var in ("R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert var in result.stderr
    assert "Traceback" not in result.stderr
    assert site.s3.proxy.take() == []  # nothing was sent
    assert site.listing() == {}


def test_missing_digest_refuses_to_publish(site: Site) -> None:
    repos = site.add(3)
    site.write()
    site.digest_path(repos[1]).unlink()  # e.g. a workspace without 'dvc pull'
    result = site.publish(expect=2)
    assert "dvc pull" in result.stderr and str(Path("shard-1")) in result.stderr
    assert writes(site.s3.proxy.take()) == [] and site.listing() == {}


def test_prefix_inside_the_dvc_remote_is_refused(site: Site) -> None:
    site.add(2)
    site.write()
    site.set_publish(prefix="dvc/summaries")
    result = site.publish("--prune", expect=2)
    assert "overlaps the DVC remote" in result.stderr
    assert site.s3.proxy.take() == []


def test_unknown_bucket_is_a_clear_error(site: Site) -> None:
    site.add(2)
    site.write()
    site.set_publish(bucket=f"missing-{uuid.uuid4().hex[:8]}")
    result = site.publish(expect=2)
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr
    assert writes(site.s3.proxy.take()) == []


# --- the prune guard -----------------------------------------------------------------------------------------


def test_prune_from_a_limited_snapshot_is_refused_dry_run_too(site: Site) -> None:
    repos = site.add(10)
    site.write()
    site.publish()
    for r in repos[2:]:  # a trial run: feed.limit 2 left two repos in the workspace
        del site.repos[r.key]
    site.write()
    yaml_params = site.path / "params.yaml"
    yaml_params.write_text(yaml_params.read_text().replace("limit: 0 ", "limit: 2 "))
    before = site.state()

    for args in (("--prune",), ("--prune", "--dry-run")):
        refused = site.publish(*args, expect=2)
        assert "prune refused" in refused.stderr and "feed.limit: 2" in refused.stderr
        assert "set feed.limit to 0 and run 'dvc repro'" in refused.stderr and "--force" in refused.stderr
        assert "8 of 10 published digests" in refused.stderr  # the ratio guard says so too
        assert writes(site.s3.proxy.take()) == [] and site.state() == before

    safe = site.publish("--prune-if-safe")  # the nightly form: publish, but do not prune
    assert "publish: not pruning: the snapshot is limited" in safe.stdout
    assert summary(safe)["pruned"] == "0" and len(site.index()) == 10

    forced = site.publish("--prune", "--force")
    assert summary(forced)["pruned"] == "8" and set(site.index()) == {r.key for r in repos[:2]}


def test_prune_from_a_stale_workspace_is_refused(site: Site) -> None:
    repos = site.add(10)
    site.write()
    site.publish()
    del site.repos[repos[0].key]
    site.write()  # dvc.lock records this workspace …
    site.change(repos[1])
    rows_only = site.path / "data" / "stats.parquet"
    site.lock = lambda: None  # … and the next write is not recorded: as after 'dvc repro --single-item fetch shard'
    site.write()
    assert rows_only.exists()
    refused = site.publish("--prune", "--dry-run", expect=2)
    assert "not up to date with dvc.lock (aggregate" in refused.stderr and "run 'dvc repro'" in refused.stderr
    assert repos[0].key in site.listing()
    (site.path / "dvc.lock").unlink()
    assert "no dvc.lock" in site.publish("--prune", expect=2).stderr
    assert repos[0].key in site.listing()


def test_prune_of_zero_rows_and_above_the_ratio_is_refused(site: Site) -> None:
    repos = site.add(10)
    site.write()
    site.publish()
    kept = dict(site.repos)
    site.repos.clear()
    site.write()
    refused = site.publish("--prune", expect=2)
    assert "holds no rows" in refused.stderr and "10 of 10 published digests (100%)" in refused.stderr

    site.repos.update(kept)
    for r in repos[:2]:
        del site.repos[r.key]
    site.write()
    refused = site.publish("--prune", expect=2)
    assert "2 of 10 published digests (20%), more than publish.max_prune_ratio 0.1" in refused.stderr
    assert "holds no rows" not in refused.stderr
    site.set_publish(max_prune_ratio=0.25)
    assert summary(site.publish("--prune"))["pruned"] == "2"


# --- the bucket heals ----------------------------------------------------------------------------------------


def test_objects_deleted_or_overwritten_outside_are_restored(site: Site) -> None:
    repos = site.add(8)
    site.write()
    site.publish()
    before = site.state()
    client = site.s3.client()
    client.delete_object(Bucket=site.bucket, Key=repos[2].key)
    client.put_object(Bucket=site.bucket, Key=repos[5].key, Body=b"overwritten by someone else")

    healed = site.publish()
    s = summary(healed)
    assert (s["uploaded"], s["restored"], s["unchanged"]) == ("2", "2", "6")
    assert "2 object(s) missing or different in the bucket" in healed.stdout
    assert sorted(puts(site.s3.proxy.take(), site.bucket)) == sorted([repos[2].key, repos[5].key])  # no index: same
    assert site.state() == before
    assert summary(site.publish())["uploaded"] == "0"


def test_index_entry_of_a_vanished_object_is_dropped_when_no_digest_can_restore_it(site: Site) -> None:
    repos = site.add(5)
    site.write()
    site.publish()
    repos[1].status = "failed"  # no digest tonight …
    site.write()
    site.s3.client().delete_object(Bucket=site.bucket, Key=repos[1].key)  # … and its object is gone
    result = site.publish()
    assert "1 index entr(ies) dropped" in result.stdout and summary(result)["index"] == "written"
    assert repos[1].key not in site.index()
    listing = site.listing()
    assert all(key in listing for key in site.index())


def test_prune_racing_a_publish_leaves_an_index_of_present_objects(site: Site, moto_s3: S3, tmp_path: Path) -> None:
    """A prunes X while B, which planned with X published, publishes: B re-plans under the lease and restores X."""
    repos = site.add(10)
    site.write()
    site.publish()
    other = Site(tmp_path / "other", moto_s3, site.bucket)
    other.repos = dict(site.repos)
    new = other.add(1, owner="new")[0]
    other.write()
    x = repos[4]
    del site.repos[x.key]
    site.write()

    proxy = moto_s3.proxy
    proxy.take()
    proxy.hold_after = 1  # A's lease PUT passes; every later PUT waits
    a = subprocess.Popen(
        [XGOV_DIGESTS, "publish", "--prune"],
        cwd=site.path,
        env=site.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: proxy.held >= 1)  # A holds the lease, its index write is waiting
    b = subprocess.Popen(
        [XGOV_DIGESTS, "publish"],
        cwd=other.path,
        env=other.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: proxy.held >= 2)  # B planned with X in the bucket and now waits for the lease
    proxy.reset()
    out_a, out_b = a.communicate(timeout=120), b.communicate(timeout=120)
    assert a.returncode == 0 and b.returncode == 0, (out_a, out_b)
    assert "pruned 1" in out_a[0]
    listing, index = site.listing(), site.index()
    assert x.key in index and new.key in index  # B ran after A's prune and put X back
    assert all(key in listing and listing[key][0].strip('"') == entry["etag"] for key, entry in index.items())
    assert LEASE not in listing


def wait_until(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# --- configuration and deadlines -----------------------------------------------------------------------------


@pytest.mark.parametrize("bucket", ["s3://bkt", "bkt/", "bkt/summaries", "Bkt"])
def test_bucket_must_be_a_bare_name(site: Site, bucket: str) -> None:
    site.add(2)
    site.write()
    site.set_publish(bucket=bucket)
    result = site.publish(expect=2)
    assert "publish.bucket must be a bare bucket name" in result.stderr and repr(bucket) in result.stderr
    assert site.s3.proxy.take() == []


def test_summary_reports_a_failed_index_write(site: Site) -> None:
    site.add(3)
    site.write()
    site.s3.proxy.fail = {f"/{site.bucket}/summaries/_index.json"}
    result = site.publish(expect=1)
    assert summary(result)["index"] == "failed" and "summaries/_index.json" in result.stderr


def test_publish_against_a_hanging_endpoint_fails_within_its_deadline(site: Site) -> None:
    from tests.fixtures.silent_server import SilentServer

    site.add(2)
    site.write()
    silent = SilentServer()
    try:
        site.path.joinpath(".dvc", "config").write_text(
            site.path.joinpath(".dvc", "config").read_text().replace(site.s3.proxy.endpoint, silent.endpoint)
        )
        yaml_params = site.path / "params.yaml"
        yaml_params.write_text(yaml_params.read_text().replace("timeout: 10 ", "timeout: 2 "))
        start = time.monotonic()
        result = site.publish(expect=1)
        took = time.monotonic() - start
    finally:
        silent.stop()
    assert "nothing more was written" in result.stderr and "Read timeout" in result.stderr, result.stderr
    assert silent.connections == 3  # three attempts, then a clear error
    assert took < 30, took  # 3 attempts x 2 s, botocore's backoff and the start-up
