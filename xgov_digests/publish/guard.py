"""The prune guard: ``--prune`` deletes only what a complete, current workspace leaves out, and only a small share."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML

from xgov_digests.core.params import Params

LOCK_FILE = Path("dvc.lock")


def workspace_reasons(settings: Params, rows: int, root: Path = Path("."), stale: list[str] | None = None) -> list[str]:
    """Why this workspace may not prune (empty: it may): a limited snapshot, no stats rows, or outputs that are not
    what ``dvc.lock`` records for the shards and ``aggregate`` (``stale``: those reasons, when already known)."""
    reasons = []
    if settings.feed.limit > 0:
        reasons.append(
            f"the snapshot is limited (feed.limit: {settings.feed.limit}), so it leaves out most repos: "
            "set feed.limit to 0 and run 'dvc repro' first"
        )
    if rows == 0:
        reasons.append("data/stats.parquet holds no rows: a prune would delete every published digest")
    reasons.extend(stale_reasons(root) if stale is None else stale)
    return reasons


def stale_reasons(root: Path = Path(".")) -> list[str]:
    """``dvc status`` of the shards and ``aggregate``; fails closed (any doubt is a reason)."""
    lock = root / LOCK_FILE
    if not lock.exists():
        return ["no dvc.lock: the workspace was not produced by 'dvc repro' (run it, or 'dvc pull')"]
    try:
        stages = (YAML(typ="safe").load(lock.read_text(encoding="utf-8")) or {}).get("stages", {})
    except Exception as exc:  # noqa: BLE001 - an unreadable lock file is a reason, not a crash
        return [f"dvc.lock is unreadable ({type(exc).__name__}): run 'dvc repro'"]
    if "aggregate" not in stages:
        return ["dvc.lock has no 'aggregate' stage: run 'dvc repro'"]
    try:
        result = subprocess.run(
            [sys.executable, "-m", "dvc", "status", "--json"], cwd=root, capture_output=True, text=True, timeout=600
        )
        status = json.loads(result.stdout) if result.returncode == 0 else None
    except (subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
        return [f"could not run 'dvc status' ({type(exc).__name__}): cannot tell whether the workspace is current"]
    if not isinstance(status, dict):
        return [f"'dvc status' failed (exit {result.returncode}): cannot tell whether the workspace is current"]
    stale = sorted(name for name in status if name == "aggregate" or name.startswith("shard@"))
    if stale:
        return [
            f"the workspace is not up to date with dvc.lock ({', '.join(stale)}: see 'dvc status'): "
            "run 'dvc repro' (or 'dvc pull' / 'dvc checkout') first"
        ]
    return []


def ratio_reason(prunable: int, published: int, max_ratio: float) -> list[str]:
    if published and prunable / published > max_ratio:
        return [
            f"the prune would delete {prunable} of {published} published digests "
            f"({prunable / published:.0%}), more than publish.max_prune_ratio {max_ratio}"
        ]
    return []
