"""The push audit's cost at scale: ``python -m bench remote-audit --entries 21000``.

A moto S3 server on 127.0.0.1 holds a DVC remote of ``entries`` digest objects plus one folder's ``.dir`` object
listing them all (the remote layout ``<prefix>/files/md5/<aa>/<rest>``); the local DVC cache holds the ``.dir``.
Timed: the audit (xgov_digests.operations.check_remote.audit: read the .dir, one paginated LIST at 1,000 keys a
page, the comparison), against the floor, a bare paginated LIST of the same prefix in the same run; then the audit
with one object deleted from the bucket, repaired from the local cache; then the verifying audit
(``verify``: download and hash every object, and a 5% sample) with one object overwritten by same-size other bytes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


def run(work: Path, *, entries: int, log: Any) -> dict[str, Any]:
    from tests.fixtures.locals3 import LocalS3
    from xgov_digests.operations.check_remote import S3Store, audit

    shutil.rmtree(work, ignore_errors=True)
    cache = work / "cache"
    s3 = LocalS3()
    try:
        client = s3.client()
        bucket = s3.make_bucket("audit-bench")
        files = [(f"org{i % 50}/project-{i:05d}.txt", f"digest {i}\n".encode()) for i in range(entries)]
        listing = [{"md5": hashlib.md5(data).hexdigest(), "relpath": rel} for rel, data in files]
        raw = json.dumps(listing).encode()
        dir_md5 = hashlib.md5(raw).hexdigest() + ".dir"
        (cache / dir_md5[:2]).mkdir(parents=True)
        (cache / dir_md5[:2] / dir_md5[2:]).write_bytes(raw)
        kept = listing[0]["md5"]
        (cache / kept[:2]).mkdir(parents=True, exist_ok=True)
        (cache / kept[:2] / kept[2:]).write_bytes(files[0][1])

        def put(item: tuple[str, bytes]) -> None:
            md5 = hashlib.md5(item[1]).hexdigest()
            client.put_object(Bucket=bucket, Key=f"dvc/files/md5/{md5[:2]}/{md5[2:]}", Body=item[1])

        t = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(put, files))
        client.put_object(Bucket=bucket, Key=f"dvc/files/md5/{dir_md5[:2]}/{dir_md5[2:]}", Body=raw)
        log(f"remote-audit: {entries} objects in moto in {time.perf_counter() - t:.1f} s")
        outs = {dir_md5: "data/summaries/shard-0"}

        t = time.perf_counter()
        pages = sum(1 for _ in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="dvc/files/md5/"))
        floor = time.perf_counter() - t

        store = S3Store(client, bucket, "dvc")
        t = time.perf_counter()
        clean = audit(store, outs, repair=False, dvc_cache=cache)
        audit_s = time.perf_counter() - t

        client.delete_object(Bucket=bucket, Key=f"dvc/files/md5/{kept[:2]}/{kept[2:]}")
        store = S3Store(client, bucket, "dvc")
        t = time.perf_counter()
        repaired = audit(store, outs, repair=True, dvc_cache=cache)
        repair_s = time.perf_counter() - t

        rel = listing[1]["md5"]
        client.put_object(Bucket=bucket, Key=f"dvc/files/md5/{rel[:2]}/{rel[2:]}", Body=b"x" * len(files[1][1]))
        timed: dict[str, tuple[float, Any]] = {}
        for name, share in (("verify_all", 1.0), ("verify_5pct", 0.05)):
            store = S3Store(client, bucket, "dvc")
            t = time.perf_counter()
            found = audit(store, outs, repair=False, dvc_cache=cache, verify=share)
            timed[name] = (time.perf_counter() - t, found)
    finally:
        s3.stop()
        shutil.rmtree(work, ignore_errors=True)
    return {
        "entries": entries,
        "list_pages": pages,
        "bare_list_s": round(floor, 3),
        "audit_s": round(audit_s, 3),
        "audit_x_bare_list": round(audit_s / floor, 2) if floor else None,
        "audit_missing": len(clean.missing),
        "repair_audit_s": round(repair_s, 3),
        "repaired": len(repaired.repaired),
        **{f"{name}_s": round(took, 3) for name, (took, _) in timed.items()},
        **{f"{name}_x_audit": round(took / audit_s, 1) for name, (took, _) in timed.items()},
        **{f"{name}_objects": found.verified for name, (_, found) in timed.items()},
        "checks": {
            "clean_finds_nothing": not clean.missing,
            "repair_finds_the_one": repaired.repaired == [kept],
            "verify_all_finds_the_overwrite": timed["verify_all"][1].corrupt == [rel],
        },
    }
