"""The repository feed: decode its body, check each entry, de-duplicate and sort it into a snapshot."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from xgov_digests.download import FeedError, download
from xgov_digests.entries import (
    Checked,
    EntryProblem,
    check_entry,
    json_type,
    parse_constant,
    parse_float,
    parse_int,
)
from xgov_digests.logs import redact
from xgov_digests.repo import Repo

log = logging.getLogger(__name__)


@dataclass
class Snapshot:
    """The normalised feed: valid, deduplicated, sorted, limited."""

    repos: list[Repo]
    records: list[dict[str, Any]]  # the full metadata of each repo, same order
    dropped: int
    duplicates: int


def decode(body: bytes, source: str = "feed") -> list[Any]:
    """The feed's JSON list. NaN, Infinity and oversized numbers become markers that drop their entry later."""
    try:
        data = json.loads(body, parse_constant=parse_constant, parse_int=parse_int, parse_float=parse_float)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FeedError(f"{source} is not valid JSON ({exc}); the previous snapshot is untouched") from None
    except RecursionError:
        raise FeedError(f"{source} is nested too deeply to be a feed; the previous snapshot is untouched") from None
    if not isinstance(data, list):
        raise FeedError(f"{source} must be a JSON list of repositories, got {json_type(data)}")
    return data


def _rank(checked: Checked) -> tuple[Any, str]:
    return checked.pushed, json.dumps(checked.record, sort_keys=True, ensure_ascii=False)


def parse_feed(body: bytes, *, limit: int = 0, source: str = "feed") -> Snapshot:
    """Validate and normalise the feed body. Raises :class:`FeedError` when nothing usable is left."""
    data = decode(body, source)
    best: dict[str, tuple[int, Checked]] = {}
    dropped = duplicates = 0
    for index, entry in enumerate(data):
        try:
            checked = check_entry(entry)
        except EntryProblem as problem:
            dropped += 1
            log.warning("dropping feed entry", extra={"index": index, "reason": str(problem)})
            continue
        for note in checked.notes:
            log.warning("feed entry changed", extra={"index": index, "reason": note})
        key = checked.repo.key
        if key in best:
            duplicates += 1
            # Keep one deterministic winner whatever the feed order: the latest parsed push time, then the record
            # whose sorted JSON is the larger string.
            if _rank(checked) <= _rank(best[key][1]):
                continue
        best[key] = (index, checked)
    if not best:
        raise FeedError(f"{source} holds no usable repository ({len(data)} entries, {dropped} dropped)")
    ordered: list[Checked] = []
    paths: dict[tuple[str, str], str] = {}
    for key in sorted(best):
        index, checked = best[key]
        repo = checked.repo
        # owner/name become a digest's path: two repos that differ only in case would collide on some disks.
        path = (repo.owner.lower(), repo.name.lower())
        if path in paths:
            dropped += 1
            log.warning("dropping feed entry", extra={"index": index, "reason": f"{repo.owner}/{repo.name} is "
                                                      f"already used (ignoring case) by {paths[path]}"})  # fmt: skip
            continue
        paths[path] = key
        ordered.append(checked)
    if limit:
        ordered = ordered[:limit]
    if dropped or duplicates:
        log.warning("feed normalised", extra={"dropped": dropped, "duplicates": duplicates, "kept": len(ordered)})
    return Snapshot([c.repo for c in ordered], [c.record for c in ordered], dropped, duplicates)


def render_snapshot(records: list[dict[str, Any]]) -> bytes:
    """The snapshot file: standard JSON (never NaN or Infinity), keys sorted, UTF-8."""
    return (json.dumps(records, indent=1, ensure_ascii=False, sort_keys=True, allow_nan=False) + "\n").encode()


def load_snapshot(source: str, *, limit: int = 0, timeout: float = 60.0, retries: int = 4) -> Snapshot:
    """Download and parse in one step (the shard CLI's ``--feed``)."""
    return parse_feed(download(source, timeout=timeout, retries=retries), limit=limit, source=redact(source))
