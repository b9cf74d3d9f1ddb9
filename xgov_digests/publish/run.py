"""One publish run: plan against the bucket (read-only), then, under the publish lease, upload, write the index
conditionally and prune what the guard allows."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from xgov_digests.core.errors import XgovError
from xgov_digests.core.params import Params
from xgov_digests.core.s3 import error_code
from xgov_digests.publish.bucket import CONFLICT, Bucket, Lease
from xgov_digests.publish.guard import ratio_reason, stale_reasons, workspace_reasons
from xgov_digests.publish.plan import Listed, Plan, PublishError, WorkspaceDigests, encode_index, make_plan, parse_index

log = logging.getLogger("xgov_digests.publish")

DEFAULT_JOBS = 32
DEFAULT_WAIT = 600.0  # seconds to wait for another publish's lease
NAMED_FAILURES = 20  # at most this many failed keys are listed one by one


class RunNotFinished(PublishError):
    """The workspace is not what a finished run leaves (a shard or aggregate is not up to date): nothing was written."""


class PruneRefused(XgovError, RuntimeError):
    """``--prune`` from a workspace that may not prune: nothing was written."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass
class Options:
    prune: str = "no"  # no | yes (refuse when the guard fails) | if-safe (publish without pruning then)
    force: bool = False
    dry_run: bool = False
    jobs: int = DEFAULT_JOBS
    wait: float = DEFAULT_WAIT


@dataclass
class Outcome:
    uploaded: int = 0
    restored: int = 0
    bytes: int = 0
    pruned: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # key -> reason (uploads, index, deletes)
    index: str = "unchanged"  # written | unchanged | failed
    prune_refused: list[str] = field(default_factory=list)


@dataclass
class _Round:
    blob: bytes | None
    etag: str | None
    old: dict[str, dict[str, Any]]
    plan: Plan
    prunable: list[str]
    refused: list[str]  # why --prune-if-safe does not prune this time


def _plan(bucket: Bucket, ws: WorkspaceDigests, settings: Params, opts: Options, reasons: list[str]) -> _Round:
    blob, etag = bucket.read_index()
    old = parse_index(blob, bucket.target)
    listed = bucket.list_digests()
    _verify_etags(bucket, old, listed, opts.jobs)
    plan = make_plan(ws, old, listed)
    prunable: list[str] = []
    verdict: list[str]
    if opts.prune != "no":
        candidates = sorted(set(listed) - ws.keys)
        ratio = settings.publish.max_prune_ratio
        verdict = [] if opts.force else reasons + ratio_reason(len(candidates), len(listed), ratio)
        if verdict and opts.prune == "yes":
            raise PruneRefused(verdict)
        if not verdict:
            prunable = candidates
            for key in plan.dropped:
                plan.index.pop(key, None)
    else:
        verdict = []
    return _Round(blob, etag, old, plan, prunable, verdict)


def _verify_etags(bucket: Bucket, old: dict[str, dict[str, Any]], listed: dict[str, Listed], jobs: int) -> None:
    """Objects whose listed ETag is not the one the index recorded, at the recorded size: some endpoints answer a
    PUT with another ETag than LIST reports, and an object overwritten from outside has another ETag too. The bytes
    decide: each such object is read (once) and hashed; one whose bytes have the recorded sha256 gets its listed ETag
    in the index (not re-uploaded), any other stays "differs in the bucket" and is uploaded again. The object's own
    ``sha256`` metadata is never trusted: an outside writer can set it."""
    suspects = {
        k: o.etag
        for k, e in old.items()
        if (o := listed.get(k)) and o.size == e.get("bytes") and o.etag != e.get("etag")
    }
    if not suspects:
        return
    stored = bucket.content_sha256(suspects, jobs)
    same = [k for k in suspects if stored[k] and stored[k] == old[k].get("sha256")]
    for key in same:
        old[key] = {**old[key], "etag": listed[key].etag}
    log.info(
        "listed ETags differ from the recorded ones: hashed the stored bytes",
        extra={"objects": len(suspects), "same_content": len(same)},
    )


def _writes(r: _Round) -> bool:
    return bool(r.plan.upload or r.prunable or encode_index(r.plan.index) != r.blob)


def run(bucket: Bucket, ws: WorkspaceDigests, settings: Params, opts: Options) -> tuple[Plan, Outcome]:
    stale = [] if opts.force else stale_reasons()
    if stale:  # digests of a half-finished run would go out with the last finished run's stats
        raise RunNotFinished(
            f"the run is not finished, so the digests and data/stats.parquet may not agree: {stale[0]}; "
            "or pass --force to publish the workspace as it is"
        )
    reasons = workspace_reasons(settings, ws.rows, stale=stale) if opts.prune != "no" and not opts.force else []
    first = _plan(bucket, ws, settings, opts, reasons)  # read-only: a publish with nothing to do writes nothing
    outcome = Outcome()
    if opts.dry_run or not _writes(first):
        _report(first, outcome, bucket.target.index_key, dry_run=opts.dry_run)
        return first.plan, outcome
    lease = Lease(bucket)
    lease.acquire(opts.wait)
    try:
        r = _plan(bucket, ws, settings, opts, reasons)  # again, under the lease: another publish may have run
        _report(r, outcome, bucket.target.index_key, dry_run=False)
        _write(bucket, r, outcome, opts, lease)
        return r.plan, outcome
    finally:
        lease.release()


def _report(r: _Round, outcome: Outcome, index_key: str, dry_run: bool) -> None:
    plan = r.plan
    outcome.prune_refused = r.refused
    if outcome.prune_refused:
        print("publish: not pruning: " + "; ".join(outcome.prune_refused), flush=True)
    if r.prunable:
        print(f"publish: {len(r.prunable)} object(s) of repos no longer in the snapshot to prune", flush=True)
    elif plan.dropped:
        print(
            f"publish: {len(plan.dropped)} object(s) of repos no longer in the snapshot kept (--prune deletes them)",
            flush=True,
        )
    if plan.forgotten:
        print(
            f"publish: {len(plan.forgotten)} index entr(ies) dropped: the object is gone from the bucket or was "
            f"replaced outside publish, and the workspace has no digest for it (e.g. {plan.forgotten[0]})",
            flush=True,
        )
    if plan.restored:
        print(f"publish: {plan.restored} object(s) missing or different in the bucket: uploading them again")
    outcome.pruned = len(r.prunable)
    outcome.restored = plan.restored
    if dry_run:
        for d in plan.upload:
            print(f"would upload {d.key} ({plan.reasons[d.key]}, {d.size} bytes)")
        for key in r.prunable:
            print(f"would delete {key}")
        if encode_index(plan.index) != r.blob:
            print(f"would write {index_key} ({len(plan.index)} entries)")
        outcome.bytes = sum(d.size for d in plan.upload)


def _write(bucket: Bucket, r: _Round, outcome: Outcome, opts: Options, lease: Lease) -> None:
    plan = r.plan
    results = bucket.upload_all(plan.upload, opts.jobs, tick=lease.renew_if_due)
    outcome.restored = 0
    for d, result in zip(plan.upload, results, strict=True):
        if isinstance(result, BaseException):
            outcome.failed[d.key] = bucket._reason(result)
            log.error("upload failed", extra={"key": d.key, "error": outcome.failed[d.key]})
        else:
            plan.index[d.key] = result
            outcome.uploaded += 1
            outcome.restored += plan.reasons[d.key].startswith(("missing", "differs"))
            outcome.bytes += result["bytes"]
    lease.renew_if_due()
    new_blob = encode_index(plan.index)  # the last write: the index names only objects that are in the bucket
    if new_blob != r.blob:
        try:
            bucket.put_index(new_blob, r.etag)
            outcome.index = "written"
        except Exception as exc:  # noqa: BLE001 - reported with the other failures
            why = bucket._reason(exc)
            if error_code(exc) in CONFLICT:
                why = f"the index changed during this publish (a writer without the lease?): run publish again ({why})"
            outcome.failed[bucket.target.index_key] = why
            outcome.index = "failed"
            log.error("index write failed", extra={"key": bucket.target.index_key, "error": why})
    if r.prunable and outcome.index != "failed":
        # After the index: it no longer names these, so no reader is sent to a deleted object.
        failed = bucket.delete(r.prunable)
        outcome.failed.update(failed)
        outcome.pruned = len(r.prunable) - len(failed)
    else:
        outcome.pruned = 0


def name_failures(failed: dict[str, str]) -> Iterable[str]:
    for i, (key, reason) in enumerate(sorted(failed.items())):
        if i == NAMED_FAILURES:
            yield f"  … and {len(failed) - NAMED_FAILURES} more"
            return
        yield f"  {key}: {reason}"
