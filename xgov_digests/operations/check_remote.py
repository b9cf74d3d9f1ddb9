"""``xgov-digests check-remote`` and the audit after ``dvc push``: is every file of the committed outputs really on
the remote? Re-upload what is missing (``check_remote``); before a push or pull, does the remote's bucket answer,
and take writes (``check_access``)?

DVC trusts a folder's ``.dir`` object on the remote for the whole folder: when one file object under it is gone
(a lifecycle rule, a mistaken delete, a partial restore), ``dvc push`` says "Everything is up to date" and a fresh
clone's ``dvc pull`` fails. This audit compares what ``dvc.lock``'s outputs name (each ``.dir`` object and every file
it lists) with one paginated LIST of the remote's ``files/md5/`` prefix, and uploads the missing objects from the
local DVC cache, byte for byte, under the keys DVC uses.

Present is not the same as right: with ``verify`` (a share of the present objects, 1.0 for all) the audit also
downloads objects and hashes them; an object whose bytes do not hash to its name (overwritten, truncated, rotted) is
named as corrupt and, with ``repair``, uploaded again from the local cache when the local copy hashes right. The
sample is drawn at random each run, so sampled audits cover the whole remote over time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from xgov_digests.core.errors import XgovError
from xgov_digests.core.s3 import S3ConfigError, check_access, default_remote, open_remote, reason, remote_settings

log = logging.getLogger("xgov_digests.operations.check_remote")

DVC_CACHE = Path(".dvc/cache/files/md5")
FILES = "files/md5"


class AuditError(XgovError, RuntimeError):
    """The audit could not be done (no dvc.lock, a .dir object nowhere): the message says what to do."""


class NotAudited(RuntimeError):
    """A remote kind the audit does not read (neither S3 nor a local path)."""


def _rel(md5: str) -> str:
    return f"{md5[:2]}/{md5[2:]}"


@dataclass
class Audit:
    expected: dict[str, str]  # md5 -> the output it belongs to
    missing: list[str] = field(default_factory=list)  # md5s not on the remote (before any repair)
    repaired: list[str] = field(default_factory=list)
    still_missing: list[str] = field(default_factory=list)
    listed: int = 0
    pages: int = 0
    verified: int = 0  # present objects downloaded and hashed
    corrupt: list[str] = field(default_factory=list)  # md5s whose remote bytes hash to something else


class LocalStore:
    """A DVC remote on a local path."""

    def __init__(self, root: Path) -> None:
        self.root = root / FILES
        self.pages = 0

    def list(self) -> set[str]:
        self.pages = 1
        if not self.root.is_dir():
            return set()
        return {d.name + f.name for d in self.root.iterdir() if d.is_dir() for f in d.iterdir() if f.is_file()}

    def read(self, md5: str) -> bytes | None:
        path = self.root / _rel(md5)
        return path.read_bytes() if path.is_file() else None

    def md5(self, md5: str) -> str | None:
        path = self.root / _rel(md5)
        return _file_md5(path) if path.is_file() else None

    def write(self, md5: str, src: Path) -> None:
        dest = self.root / _rel(md5)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".audit-tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)


class S3Store:
    """A DVC remote on S3/R2: keys ``<prefix>/files/md5/<aa>/<rest>``."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client, self.bucket = client, bucket
        self.base = f"{prefix}/{FILES}/" if prefix else f"{FILES}/"
        self.pages = 0

    def list(self) -> set[str]:
        found: set[str] = set()
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.base):
            self.pages += 1
            for obj in page.get("Contents", []):
                found.add(obj["Key"][len(self.base) :].replace("/", "", 1))
        return found

    def read(self, md5: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.base + _rel(md5))["Body"].read()
        except Exception:  # noqa: BLE001 - absent or unreadable: the caller names it
            return None

    def md5(self, md5: str) -> str | None:
        """The md5 of the object's bytes, streamed (None: unreadable)."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.base + _rel(md5))["Body"]
            digest = hashlib.md5()
            for chunk in body.iter_chunks(1 << 16):
                digest.update(chunk)
            return digest.hexdigest()
        except Exception:  # noqa: BLE001 - unreadable: named as corrupt
            return None

    def write(self, md5: str, src: Path) -> None:
        self.client.upload_file(str(src), self.bucket, self.base + _rel(md5))


def open_store(name: str | None, timeout: float) -> tuple[str, LocalStore | S3Store, str]:
    """The remote ``name`` (default: the default remote) as a store, with its name and a description."""
    name = name or default_remote()
    if not name:
        raise S3ConfigError("no DVC remote given and no default remote: run 'make r2 …' or pass REMOTE=name")
    url = str(remote_settings(name)["url"])
    if url.startswith("s3://"):
        remote = open_remote(name)
        parts = urlsplit(url)
        return name, S3Store(remote.client(timeout), parts.netloc, parts.path.strip("/")), url
    if "://" in url:
        raise NotAudited(f"remote '{name}' is {url}: the audit reads S3 and local remotes only; not audited")
    root = Path(url) if os.path.isabs(url) else (Path(".dvc") / url).resolve()
    return name, LocalStore(root), str(root)


def committed_outputs(lock: Path = Path("dvc.lock")) -> dict[str, str]:
    """md5 -> path of every cached output ``dvc.lock`` records (folders: their ``.dir`` md5)."""
    from dvc.repo import Repo

    if not lock.exists():
        raise AuditError("no dvc.lock: nothing to audit (run 'make repro' first)")
    outs: dict[str, str] = {}
    with Repo() as repo:
        for out in repo.index.outs:
            if out.use_cache and out.hash_info and out.hash_info.value and out.hash_info.name == "md5":
                outs[out.hash_info.value] = str(out.def_path)
    return outs


def expected_objects(outs: dict[str, str], store: LocalStore | S3Store, dvc_cache: Path = DVC_CACHE) -> dict[str, str]:
    """Every object the outputs need: each ``.dir`` object and every file it lists (read from the local cache,
    else from the remote)."""
    expected: dict[str, str] = {}
    for md5, path in outs.items():
        expected[md5] = path
        if not md5.endswith(".dir"):
            continue
        local = dvc_cache / _rel(md5)
        raw = local.read_bytes() if local.is_file() else store.read(md5)
        if raw is None:
            raise AuditError(
                f"the folder listing of {path} ({md5}) is neither in the local DVC cache nor on the remote: "
                f"run 'dvc repro' (or 'dvc commit {path}') in the workspace that produced it, then 'make push'"
            )
        for entry in json.loads(raw):
            expected.setdefault(entry["md5"], f"{path}/{entry['relpath']}")
    return expected


def _file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        while chunk := f.read(1 << 16):
            digest.update(chunk)
    return digest.hexdigest()


def _content_md5(md5: str) -> str:
    """What the object's bytes must hash to: its name (a folder's ``.dir`` object: its name without ``.dir``)."""
    return md5.removesuffix(".dir")


def verify_sample(present: list[str], share: float, rng: random.Random | None = None) -> list[str]:
    """``share`` of ``present`` (at least one when the share is above 0), drawn at random; all for 1.0."""
    if share <= 0 or not present:
        return []
    if share >= 1:
        return sorted(present)
    return sorted((rng or random.Random()).sample(sorted(present), max(1, round(len(present) * share))))


def audit(
    store: LocalStore | S3Store,
    outs: dict[str, str],
    repair: bool,
    dvc_cache: Path = DVC_CACHE,
    verify: float = 0.0,
    jobs: int = 16,
    rng: random.Random | None = None,
) -> Audit:
    """Compare the remote's listing with what the outputs need; with ``verify``, download that share of the present
    objects (1.0: all) and hash them; with ``repair``, upload the missing and corrupt objects that the local cache
    holds (a local copy that does not hash right is never uploaded)."""
    expected = expected_objects(outs, store, dvc_cache)
    listed = store.list()
    result = Audit(expected, sorted(set(expected) - listed), listed=len(listed), pages=store.pages)
    sample = verify_sample([m for m in expected if m in listed], verify, rng)
    if sample:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max(1, jobs), thread_name_prefix="verify") as pool:
            found = dict(zip(sample, pool.map(store.md5, sample), strict=True))
        result.verified = len(sample)
        result.corrupt = sorted(m for m in sample if found[m] != _content_md5(m))
        if result.corrupt:
            log.warning(
                "objects on the remote whose bytes do not match their hash",
                extra={"objects": len(result.corrupt), "e.g.": describe(result.corrupt, expected, 3)},
            )
    for md5 in result.missing + result.corrupt:
        src = dvc_cache / _rel(md5)
        if repair and src.is_file() and _file_md5(src) == _content_md5(md5):
            store.write(md5, src)
            result.repaired.append(md5)
        else:
            result.still_missing.append(md5)
    if result.repaired:
        log.warning(
            "re-uploaded objects missing from the remote or corrupt there", extra={"objects": len(result.repaired)}
        )
    return result


def describe(md5s: Iterable[str], expected: dict[str, str], at_most: int = 5) -> str:
    items = sorted(md5s)
    shown = ", ".join(f"{expected[m]} ({FILES}/{_rel(m)})" for m in items[:at_most])
    return shown + (f" and {len(items) - at_most} more" if len(items) > at_most else "")


def check_remote_access(remote: str | None, timeout: float, write: bool = False) -> str:
    """The bucket of ``remote`` (the default remote when None) answers with its credentials and, with ``write``,
    takes a probe object; what was checked, one line. Raises XgovError saying what to fix."""
    try:
        return check_access(remote, timeout=timeout, write=write)
    except S3ConfigError as exc:
        raise XgovError(str(exc)) from None


def check_remote(remote: str | None, timeout: float, repair: bool = False, verify: float = 0.0) -> None:
    """Audit ``remote`` against dvc.lock's outputs and print what was found (``repair``: upload what is missing from
    the local cache; ``verify``: also hash that share of the present objects). Raises XgovError naming what is still
    missing or corrupt (exit 1), or why the audit could not run (exit 2)."""
    start = time.perf_counter()
    try:
        name, store, where = open_store(remote, timeout)
        result = audit(store, committed_outputs(), repair, verify=verify)
    except NotAudited as exc:
        print(f"check_remote: {exc}")
        return
    except (AuditError, S3ConfigError) as exc:
        raise XgovError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - the remote failed mid-audit: one line, not a traceback
        raise XgovError(f"the audit of the remote could not finish: {reason(exc)}", exit_code=1) from None
    took = time.perf_counter() - start
    print(
        f"check_remote: audit of remote '{name}' ({where}): {len(result.expected)} objects named by dvc.lock, "
        f"{result.listed} listed in {result.pages} page(s), missing {len(result.missing)}, re-uploaded "
        f"{len(result.repaired)}, still missing {len(result.still_missing)}, seconds {took:.2f}"
        + (f", verified {result.verified} (corrupt {len(result.corrupt)})" if verify else ""),
        flush=True,
    )
    if result.repaired:
        repaired = describe(result.repaired, result.expected)
        print(f"check_remote: re-uploaded what 'dvc push' had taken for present: {repaired}", file=sys.stderr)
    if result.still_missing:
        corrupt = set(result.corrupt)
        what = (
            "missing from the remote"
            if not corrupt & set(result.still_missing)
            else "missing from the remote or corrupt there (their bytes do not match their hash)"
        )
        fix = "run 'make push' to re-upload them"
        if corrupt & set(result.still_missing):  # present to 'dvc push' and to a listing: only a verifying push
            fix = "run 'xgov-digests push --verify 1' to upload them again from the local DVC cache"
        if repair:
            fix = (
                "the local DVC cache does not hold them either: run 'dvc repro --force' of the stages named where "
                "they can be rebuilt, then 'make push'"
            )
        missing = describe(result.still_missing, result.expected)
        raise XgovError(f"{len(result.still_missing)} object(s) are {what}: {missing}; {fix}", exit_code=1)
