"""A stage's run-cache entries checked against the objects the remote really holds.

``dvc push --run-cache`` uploads a stage's run-cache entry (``runs/<key>/<entry>``) before the stage's data, so a
worker stopped in between leaves an entry whose objects never reached the remote. ``dvc repro --pull`` copies every
entry of the remote into the local run-cache and then tries only one entry per stage key (the newest file), so a
dangling entry can hide a complete one beside it. Here each entry of a still-missing stage is checked: every object
its outputs name (each folder's ``.dir`` object and every file it lists) must be in one LIST of the remote's
``files/md5/``. Dangling entries are named and removed from the local run-cache (never from the remote: a worker may
still be pushing the data); the newest complete entry becomes the one DVC picks, and its objects are pulled, so a
``dvc repro`` without ``--pull`` restores the stage from it.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from xgov_digests.core.params import StorageParams

log = logging.getLogger("xgov_digests.operations.runcache")


def entry_objects(entry: dict[str, Any]) -> dict[str, str]:
    """md5 -> output path of a run-cache entry's cached outputs."""
    return {str(o["md5"]): str(o["path"]) for o in entry.get("outs", []) if isinstance(o, dict) and o.get("md5")}


def restore_complete(targets: list[str], storage: StorageParams, remote: str | None = None) -> list[str]:
    """For each stage of ``targets``, keep only the local run-cache entries whose objects are all on the remote,
    make the newest of those the one DVC restores and pull its objects; returns the targets that have one. The
    remote's requests are bounded by ``storage.timeout``."""
    from dvc.repo import Repo

    from xgov_digests.operations.check_remote import AuditError, expected_objects, open_store

    _, store, where = open_store(remote, storage.timeout)
    listed = store.list()
    ready: list[str] = []
    with Repo() as repo, repo.lock:
        for target in targets:
            stages = repo.stage.collect(target)
            if len(stages) != 1:
                continue
            stage = stages[0]
            try:
                stage.save_deps()
                from dvc.stage.cache import _get_stage_hash

                key = _get_stage_hash(stage)
            except Exception as exc:  # noqa: BLE001 - a stage DVC cannot key has no run-cache entry
                log.warning("cannot key the stage's run-cache", extra={"stage": target, "error": str(exc)})
                continue
            folder = Path(repo.stage_cache._get_cache_dir(key))
            if not folder.is_dir():
                continue
            complete: list[tuple[float, Path, dict[str, Any]]] = []
            for path in sorted(folder.iterdir()):
                entry = repo.stage_cache._load_cache(key, path.name)
                if not entry:
                    continue
                try:
                    needed = expected_objects(entry_objects(entry), store)
                except (AuditError, ValueError, KeyError, TypeError):
                    needed = None
                lacking = None if needed is None else sorted(set(needed) - listed)
                if needed is not None and not lacking:
                    complete.append((path.stat().st_mtime, path, entry))
                    continue
                what = f"{len(lacking)} object(s)" if lacking is not None else "its folder listing"
                log.warning(
                    f"{target}: ignoring a run-cache entry whose data is not on the remote ({what} missing; a push "
                    f"stopped half-way?): runs/{key[:2]}/{key}/{path.name} on {where}",
                    extra={"stage": target, "entry": f"runs/{key[:2]}/{key}/{path.name}", "remote": where},
                )
                path.unlink()
            if not complete:
                continue
            _, chosen, entry = max(complete, key=lambda c: (c[0], c[1].name))
            now = time.time() + 1
            os.utime(chosen, (now, now))  # the newest file: the entry DVC restores
            cached = repo.stage_cache._create_stage(entry, wdir=stage.wdir)
            for objs in cached.get_used_objs().values():
                repo.cloud.pull(objs, remote=remote)
            log.info(
                f"{target}: restoring from the complete run-cache entry {chosen.name}",
                extra={"stage": target, "entry": chosen.name},
            )
            ready.append(target)
    return ready
