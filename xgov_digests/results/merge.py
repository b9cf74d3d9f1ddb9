"""Merging the shards' stats: exactly the current offsets, each checked against its manifest, no repo twice."""

from __future__ import annotations

import pandas as pd

from xgov_digests.core.errors import XgovError
from xgov_digests.core.logs import redact
from xgov_digests.core.repo import normalise_url
from xgov_digests.feed.manifest import manifest_path, read_manifest
from xgov_digests.schemas.stats import read_stats, stats_path


class AggregateError(XgovError, RuntimeError):
    """The shards' stats are missing or inconsistent with the manifests."""


def combine(batch_size: int, offsets: list[int]) -> pd.DataFrame:
    """Concatenate the stats of exactly these offsets, checking them against the manifests."""
    frames = []
    for k in offsets:
        path = stats_path(k)
        if not path.exists():
            raise AggregateError(f"{path} is missing: run 'dvc repro shard@{k}'")
        frame = read_stats(path)
        expected = {normalise_url(redact(r.url)) for r in read_manifest(manifest_path(k), batch_size, k)}
        got = set(frame["url"].map(normalise_url))
        if missing := sorted(expected - got):
            raise AggregateError(
                f"{path} has no row for {len(missing)} manifest repo(s), e.g. {missing[0]}; "
                f"re-run 'dvc repro shard@{k}'"
            )
        if (frame["batch_size"] != batch_size).any() or (frame["offset"] != k).any():
            raise AggregateError(f"{path} was written for another batch size or offset; re-run 'dvc repro shard@{k}'")
        frames.append(frame)
    combined = pd.concat(frames, ignore_index=True)
    dupes = combined[combined["url"].map(normalise_url).duplicated(keep=False)]
    if not dupes.empty:
        first = dupes.iloc[0]
        raise AggregateError(
            f"{first['url']} appears in shards {sorted(set(dupes['offset']))}: re-run 'dvc repro fetch'"
        )
    return combined.sort_values(["offset", "url"], ignore_index=True)
