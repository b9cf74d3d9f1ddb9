"""The repository feed: decode its body, check each entry, de-duplicate and sort it into a snapshot."""

from __future__ import annotations

import itertools
import json
import logging
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from xgov_digests.core.logs import redact
from xgov_digests.core.params import FeedParams, Params
from xgov_digests.core.repo import Repo
from xgov_digests.feed.download import FeedError, download
from xgov_digests.feed.entries import (
    Checked,
    EntryProblem,
    check_entry,
    clone_problem,
    json_type,
    object_pairs,
    parse_constant,
    parse_float,
    parse_int,
)

log = logging.getLogger(__name__)


@dataclass
class Snapshot:
    """The normalised feed: valid, deduplicated, sorted, limited."""

    repos: list[Repo]
    records: list[dict[str, Any]]  # the full metadata of each repo, same order
    dropped: int
    duplicates: int


def decode(body: bytes, source: str = "feed") -> list[Any]:
    """The feed's JSON list. NaN, Infinity, oversized numbers and keys given twice become markers that drop their
    entry later; a UTF-8 byte order mark is accepted."""
    if body[:2] == b"\x1f\x8b":
        raise FeedError(f"{source} is gzip data sent without Content-Encoding: gzip (not decoded); check feed.url")
    try:
        data = json.loads(
            body,
            parse_constant=parse_constant,
            parse_int=parse_int,
            parse_float=parse_float,
            object_pairs_hook=object_pairs,
        )
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FeedError(f"{source} is not valid JSON ({exc}); the previous snapshot is untouched") from None
    except RecursionError:
        raise FeedError(f"{source} is nested too deeply to be a feed; the previous snapshot is untouched") from None
    if not isinstance(data, list):
        raise FeedError(f"{source} must be a JSON list of repositories, got {json_type(data)}")
    return data


@dataclass(frozen=True)
class _Candidate:
    index: int
    checked: Checked
    problem: str | None  # why a shard would not clone it (None: it would)

    @property
    def path(self) -> tuple[str, str]:
        # owner/name become a digest's path: two repos that differ only in case would collide on some disks.
        return self.checked.repo.owner.lower(), self.checked.repo.name.lower()


def _ranked(candidates: list[_Candidate]) -> list[_Candidate]:
    """Best first, whatever the feed order: an entry a shard can clone, then the latest parsed ``pushedAt``, then
    the smaller normalised URL, then the record whose sorted JSON is the larger string (written only for ties)."""

    def rank(c: _Candidate) -> tuple[bool, float, str]:
        return c.problem is not None, -c.checked.pushed.timestamp(), c.checked.repo.key

    ordered: list[_Candidate] = []
    for _, tied in itertools.groupby(sorted(candidates, key=rank), key=rank):
        group = list(tied)
        if len(group) > 1:
            group.sort(key=lambda c: json.dumps(c.checked.record, sort_keys=True, ensure_ascii=False), reverse=True)
        ordered += group
    return ordered


def _why(winner: _Candidate, loser: _Candidate) -> str:
    if loser.problem and not winner.problem:
        return f"it could not be cloned ({loser.problem})"
    if loser.checked.pushed != winner.checked.pushed:
        return "its pushedAt is older"
    if loser.checked.repo.key != winner.checked.repo.key:
        return "its URL sorts later"
    return "its record sorts later"


def one_spelling_per_owner(kept: list[Checked]) -> list[Checked]:
    """Owners that differ only in case (``Alphagov/a``, ``alphagov/b``) are one account on GitHub, and their digests
    would share one folder on a case-insensitive disk (macOS's default, a Windows checkout), where it takes the
    spelling of whichever was written first and the other digest's path no longer matches its stats row. Each such
    owner gets one spelling, whatever the feed's order: the one most of its entries use, then the one that sorts
    first; each entry written otherwise is rewritten to it (in its repo and its record) with a warning."""
    spellings: dict[str, Counter[str]] = {}
    for c in kept:
        spellings.setdefault(c.repo.owner.lower(), Counter())[c.repo.owner] += 1
    chosen = {
        folded: min(counts, key=lambda s: (-counts[s], s)) for folded, counts in spellings.items() if len(counts) > 1
    }
    if not chosen:
        return kept
    out = []
    for c in kept:
        canon = chosen.get(c.repo.owner.lower(), c.repo.owner)
        if canon != c.repo.owner:
            log.warning(
                "feed entry changed",
                extra={
                    "repo": f"{c.repo.owner}/{c.repo.name}",
                    "reason": f"owner {c.repo.owner!r} is written {canon!r} by other entries (one account: their "
                    f"digests would share one folder on a case-insensitive disk): written {canon!r}",
                },
            )
            c = replace(c, repo=replace(c.repo, owner=canon), record={**c.record, "owner": canon})
        out.append(c)
    return out


def parse_feed(
    body: bytes,
    *,
    limit: int = FeedParams.limit,
    source: str = "feed",
    allowed_hosts: tuple[str, ...] | None = None,
    allow_file_urls: bool = True,
) -> Snapshot:
    """Validate and normalise the feed body. Raises :class:`FeedError` when nothing usable is left.

    Two entries with the same normalised URL, or with the same owner/name ignoring case, are one repo: the
    :func:`_ranked` best is kept and each loser is logged with the winner and the reason. With ``allowed_hosts``
    given, an entry a shard would refuse (another host, ``file://`` when not allowed) never beats one it would
    clone; it stays in the snapshot only when nothing claims its URL or owner/name (the shard then fails it)."""
    data = decode(body, source)
    candidates: list[_Candidate] = []
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
        problem = None if allowed_hosts is None else clone_problem(checked.repo.url, allowed_hosts, allow_file_urls)
        candidates.append(_Candidate(index, checked, problem))
    if not candidates:
        raise FeedError(f"{source} holds no usable repository ({len(data)} entries, {dropped} dropped)")
    by_key: dict[str, _Candidate] = {}
    by_path: dict[tuple[str, str], _Candidate] = {}
    for cand in _ranked(candidates):
        repo = cand.checked.repo
        winner = by_key.get(repo.key) or by_path.get(cand.path)
        if winner is None:
            by_key[repo.key] = by_path[cand.path] = cand
            continue
        same_url = winner.checked.repo.key == repo.key
        duplicates += same_url
        dropped += not same_url
        won = winner.checked.repo
        log.warning(
            "dropping feed entry",
            extra={
                "index": cand.index,
                "kept_index": winner.index,
                "repo": f"{won.owner}/{won.name}",
                "reason": f"{'same URL' if same_url else 'same owner/name (ignoring case)'} as entry {winner.index} "
                f"({won.url}, pushedAt {won.pushed_at}), which is kept: {_why(winner, cand)}",
            },
        )
    ordered = one_spelling_per_owner([by_key[key].checked for key in sorted(by_key)])
    if limit:
        ordered = ordered[:limit]
    if dropped or duplicates:
        log.warning("feed normalised", extra={"dropped": dropped, "duplicates": duplicates, "kept": len(ordered)})
    return Snapshot([c.repo for c in ordered], [c.record for c in ordered], dropped, duplicates)


def render_snapshot(records: list[dict[str, Any]]) -> bytes:
    """The snapshot file: standard JSON (never NaN or Infinity), keys sorted, UTF-8."""
    return (json.dumps(records, indent=1, ensure_ascii=False, sort_keys=True, allow_nan=False) + "\n").encode()


def load_snapshot(source: str, params: Params, *, require_validator: bool = False) -> Snapshot:
    """Download and parse in one step with the ``feed`` and ``ingest`` params (fetch, and the shard CLI's
    ``--feed``). A feed too large for this machine's memory is a :class:`FeedError`, not a traceback.
    ``require_validator``: see :func:`~xgov_digests.feed.download.download` (fetch, whose dependency is the URL)."""
    feed = params.feed
    try:
        body = download(
            source,
            timeout=feed.timeout,
            retries=feed.retries,
            max_bytes=feed.max_bytes,
            require_validator=require_validator,
        )
        return parse_feed(
            body,
            limit=feed.limit,
            source=redact(source),
            allowed_hosts=params.ingest.allowed_hosts,
            allow_file_urls=params.ingest.allow_file_urls,
        )
    except MemoryError:
        raise FeedError(
            f"the feed {redact(source)} does not fit in this machine's memory once parsed; lower feed.max_bytes "
            f"({feed.max_bytes}) or run where there is more memory; the previous snapshot is untouched"
        ) from None
