"""Publish only from a finished run, with metadata that describes the bytes, and a lease that cannot trap its owner.

Against moto's S3 server through the fault proxy (tests/fixtures/s3proxy.py): a lost response to the lease PUT,
PUT ETags that differ from LIST's, SIGTERM in the middle of the uploads, a crashed holder's lease.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.fixtures.publish_site import LEASE, Site, summary, writes

pytestmark = pytest.mark.slow  # each test runs the publish CLI against S3 (moto), several seconds


def test_publish_refuses_an_unfinished_run_and_force_publishes_it(site: Site) -> None:
    repos = site.add(6)
    site.write()
    site.publish()
    site.change(repos[0])
    site.lock = lambda: None  # the shards rewrote their digests, aggregate did not run: dvc.lock is behind
    site.write()
    refused = site.publish(expect=2)
    lines = [ln for ln in refused.stderr.splitlines() if not ln.startswith("{")]  # the JSON log lines aside
    assert len(lines) == 1 and lines[0].startswith("publish: error: the run is not finished")
    assert "aggregate" in lines[0] and "run 'dvc repro'" in lines[0] and "--force" in lines[0]
    assert writes(site.s3.proxy.take()) == []
    assert "the run is not finished" in site.publish("--dry-run", expect=2).stderr
    forced = site.publish("--force")
    assert summary(forced)["uploaded"] == "1"
    body, _, meta = site.state()[repos[0].key]
    assert meta["commit"] == repos[0].commit and f"Commit: {repos[0].commit}\n".encode() in body


def test_metadata_and_index_describe_the_bytes_uploaded(site: Site) -> None:
    repos = site.add(3)
    site.write()
    stale = repos[1].commit
    site.change(repos[1])  # the digest file is newer than its stats row
    site.digest_path(repos[1]).write_text(repos[1].text())
    site.lock()
    site.publish()
    body, _, meta = site.state()[repos[1].key]
    assert f"Commit: {repos[1].commit}\n".encode() in body
    assert meta["commit"] == repos[1].commit != stale
    assert meta["pushed-at"] == repos[1].pushed_at
    assert site.index()[repos[1].key]["commit"] == repos[1].commit


def test_a_lost_answer_to_the_lease_put_finds_its_own_lease(site: Site) -> None:
    site.add(4)
    site.write()
    site.s3.proxy.lose = {f"/{site.bucket}/{LEASE}"}  # stored, then 500: the retry gets 412 on its own lease
    out = site.publish()
    assert summary(out)["uploaded"] == "4"
    assert LEASE not in site.listing()


def test_etag_disagreement_falls_back_to_the_stored_sha256(site: Site) -> None:
    site.add(5)
    site.write()
    site.s3.proxy.put_etag = True  # PUT answers carry other ETags than LIST reports
    assert summary(site.publish())["uploaded"] == "5"
    assert LEASE not in site.listing()  # released although its PUT ETag was not the bucket's
    second = site.publish()
    assert summary(second)["uploaded"] == "0" and summary(second)["unchanged"] == "5"
    requests = site.s3.proxy.take()
    digests = [r for r in requests if r.method == "GET" and r.path.endswith(".txt")]
    assert len(digests) == 5 and len({r.path for r in digests}) == 5  # read and hashed once, in one planning round …
    assert not [r for r in requests if r.method == "HEAD"]  # … never the object's own claim
    assert LEASE not in site.listing()
    site.publish()
    assert not [r for r in site.s3.proxy.take() if r.path.endswith(".txt")]  # … then the index holds LIST's ETags
    site.s3.proxy.put_etag = False


@pytest.mark.parametrize("put_etag", [False, True], ids=["etags-agree", "put-etags-differ"])
def test_a_same_size_overwrite_carrying_the_right_metadata_is_restored(site: Site, put_etag: bool) -> None:
    """Bytes decide, not the object's own ``sha256`` metadata: an outside writer can set that too."""
    repos = site.add(4)
    site.write()
    site.s3.proxy.put_etag = put_etag
    site.publish()
    before = site.state()
    client = site.s3.client()
    body, ctype, meta = before[repos[1].key]
    forged = body.replace(b"line 1 ", b"LINE 1 ")  # same size, other bytes, the genuine metadata (sha256 included)
    assert len(forged) == len(body) and forged != body
    client.put_object(Bucket=site.bucket, Key=repos[1].key, Body=forged, ContentType=ctype, Metadata=meta)
    assert site.state()[repos[1].key][2]["sha256"] == meta["sha256"]

    healed = site.publish()
    s = summary(healed)
    assert (s["uploaded"], s["restored"], s["unchanged"]) == ("1", "1", "3"), healed.stdout
    after = site.state()
    digests = [k for k in before if k.endswith(".txt")]
    assert {k: after[k] for k in digests} == {k: before[k] for k in digests}
    index = json.loads(after["summaries/_index.json"][0])
    listed = {k: etag.strip('"') for k, (etag, _) in site.listing().items()}
    assert index[repos[1].key]["sha256"] == meta["sha256"]
    if not put_etag:
        assert all(e["etag"] == listed[k] for k, e in index.items())
    assert summary(site.publish())["uploaded"] == "0"
    site.s3.proxy.put_etag = False


def test_sigterm_releases_the_lease_and_starts_no_more_uploads(site: Site) -> None:
    site.add(40)
    site.write()
    site.s3.proxy.hold_after = 3  # the lease and two uploads pass, the rest hang
    proc = site.start("--jobs", "2")
    deadline = time.monotonic() + 60
    while site.s3.proxy.held < 2:
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    site.s3.proxy.release.set()  # the held requests answer (503) so the running uploads end
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    assert LEASE not in site.listing()
    assert site.s3.proxy.forwarded_puts <= 3  # no queued upload started after the signal


def test_a_crashed_holders_lease_blocks_with_a_clear_message_then_is_taken_over(site: Site) -> None:
    site.add(2)
    site.write()
    client = site.s3.client()
    held = {"holder": "crashed-host:4242", "nonce": "x", "expires": time.time() + 600}
    client.put_object(Bucket=site.bucket, Key=LEASE, Body=json.dumps(held).encode())
    blocked = site.publish("--wait", "1", expect=1)
    assert "waiting for the publish lease held by crashed-host:4242" in blocked.stderr
    assert "crashed-host:4242" in blocked.stderr and "taken over once it expires" in blocked.stderr
    # expiry is the bucket's: a holder whose clock runs a day behind (its 'expires' long past) still holds …
    client.put_object(Bucket=site.bucket, Key=LEASE, Body=json.dumps({**held, "expires": time.time() - 86400}).encode())
    assert "crashed-host:4242" in site.publish("--wait", "1", expect=1).stderr
    # … and one whose clock runs a day ahead expires with its ttl after the object's Last-Modified
    ahead = {**held, "expires": time.time() + 86400, "ttl": 1}
    client.put_object(Bucket=site.bucket, Key=LEASE, Body=json.dumps(ahead).encode())
    taken = site.publish("--wait", "10")
    assert "taking over the expired publish lease of crashed-host:4242" in taken.stderr
    assert summary(taken)["uploaded"] == "2"
    assert LEASE not in site.listing()


@pytest.mark.parametrize("body", [b"{not json", b"", b"[1, 2]", b'{"holder": 7, "ttl": "x"}', b"\xff\xfe"])
def test_an_unreadable_lease_is_taken_over_once_expired_by_the_buckets_clock(site: Site, body: bytes) -> None:
    from xgov_digests.publish.bucket import Bucket, Lease, LeaseError
    from xgov_digests.publish.plan import Target

    client = site.s3.client()
    client.put_object(Bucket=site.bucket, Key=LEASE, Body=body)
    bucket = Bucket(client, Target(site.bucket, LEASE.split("/")[0]), site.s3.endpoint)
    with pytest.raises(LeaseError, match="another publish"):  # not expired yet: it blocks
        Lease(bucket, ttl=60).acquire(wait=1)
    lease = Lease(bucket, ttl=1)  # this run's ttl: the unreadable lease names none
    start = time.monotonic()
    lease.acquire(wait=10)
    assert time.monotonic() - start < 8
    assert json.loads(client.get_object(Bucket=site.bucket, Key=LEASE)["Body"].read())["nonce"] == lease.nonce
    lease.release()
    assert LEASE not in site.listing()
