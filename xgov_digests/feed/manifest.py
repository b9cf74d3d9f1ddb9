"""Per-shard manifests: exactly what a shard's output depends on, written byte-stably for DVC."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xgov_digests.core.errors import XgovError
from xgov_digests.core.files import MANIFEST_DIR, write_atomic
from xgov_digests.core.repo import Repo


class ManifestError(XgovError, ValueError):
    """A manifest is missing or does not match the shard asked for."""


def manifest_path(offset: int, directory: Path = MANIFEST_DIR) -> Path:
    return directory / f"shard-{offset}.json"


def render(batch_size: int, offset: int, assign: str, repos: list[Repo]) -> bytes:
    doc: dict[str, Any] = {
        "batch_size": batch_size,
        "offset": offset,
        "assign": assign,
        "repos": [r.manifest_entry() for r in repos],
    }
    return (json.dumps(doc, indent=1, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")


def write_manifest(path: Path, batch_size: int, offset: int, assign: str, repos: list[Repo]) -> None:
    write_atomic(path, render(batch_size, offset, assign, repos))


def read_manifest(path: Path, batch_size: int, offset: int) -> list[Repo]:
    """Load a shard's repos, checking it was written for this batch size and offset."""
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise ManifestError(f"{path} not found: run 'dvc repro fetch' first, or pass --feed URL_OR_PATH") from exc
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path} is not valid JSON ({exc}); re-run 'dvc repro fetch'") from exc
    if doc.get("batch_size") != batch_size or doc.get("offset") != offset:
        raise ManifestError(
            f"{path} was written for batch size {doc.get('batch_size')}, offset {doc.get('offset')}, "
            f"not {batch_size}, {offset}; re-run 'dvc repro fetch' after changing shards.batch_size"
        )
    return [Repo(e["url"], e["owner"], e["name"], e.get("pushedAt")) for e in doc["repos"]]
