"""Stable shards: with the default assignment a repo keeps its shard whatever else the feed gains or loses.

A 12-repo feed gains 2 repos (in the middle of the sorted snapshot): under the default (``hash``) only the shards that
hold the 2 new repos re-run and no digest changes folder; under ``index`` most shards re-run and digests move.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Workspace, write_feed
from tests.fixtures.sample import build_corpus
from xgov_digests.core.params import load_params

pytestmark = pytest.mark.slow
ADDED = (3, 8)  # the two repos the feed gains: entries in the middle of the sorted snapshot


def night(ws: Workspace) -> tuple[list[str], dict[str, str]]:
    """``dvc repro`` (plain DVC): the shards it ran and the digest index it left."""
    out = ws.dvc("repro").stdout
    ran = [s for s in ws.ran_stages(out) if s.startswith("shard@")]
    return ran, json.loads((ws.path / "data/index.json").read_text())


def shards_holding(ws: Workspace, urls: set[str]) -> set[str]:
    found = set()
    for path in (ws.path / "data/manifests").glob("shard-*.json"):
        if urls & {e["url"] for e in json.loads(path.read_text())["repos"]}:
            found.add(f"shard@{path.stem.split('-')[1]}")
    return found


def gain_two_repos(tmp_path: Path, workspace_factory, entries: list[dict], assign: str | None) -> dict:
    before = [e for i, e in enumerate(entries) if i not in ADDED]
    feed = write_feed(tmp_path / f"feed-{assign}.json", before)
    ws = workspace_factory(str(feed), name=f"ws-{assign}")
    if assign:
        ws.set_params(shards={"assign": assign})
    night(ws)
    ws.commit("12 repos")
    first = json.loads((ws.path / "data/index.json").read_text())
    write_feed(feed, entries)
    ran, second = night(ws)
    moved = sorted(k for k in first if second.get(k) != first[k])
    new = {entries[i]["url"] for i in ADDED}
    return {"ws": ws, "ran": ran, "moved": moved, "holding": shards_holding(ws, new), "index": second}


def test_the_default_assignment_is_hash(tmp_path: Path) -> None:
    assert load_params(Path(__file__).parents[2] / "params.yaml").shards.assign == "hash"


@pytest.mark.timeout(1200)  # two dvc repro of 10 shards each
def test_adding_two_repos_reruns_only_their_shards_and_moves_no_digest(tmp_path: Path, workspace_factory) -> None:
    entries = build_corpus(tmp_path / "corpus", 14)
    default = gain_two_repos(tmp_path, workspace_factory, entries, None)  # params.yaml as shipped
    print(
        f"2 repos added to a 12-repo feed, 10 shards, the default (hash): re-ran {len(default['ran'])} shards, "
        f"moved {len(default['moved'])} digests"
    )
    assert set(default["ran"]) <= default["holding"] and default["ran"], default
    assert default["moved"] == []
    assert len(default["index"]) == 14
    assert default["ws"].dvc("status").stdout.strip() == "Data and pipelines are up to date."


@pytest.mark.timeout(1200)
def test_under_index_the_same_change_reruns_most_shards_and_moves_digests(tmp_path: Path, workspace_factory) -> None:
    """The trade-off that made hash the default (index stays available for the original tool's rule)."""
    entries = build_corpus(tmp_path / "corpus", 14)
    index = gain_two_repos(tmp_path, workspace_factory, entries, "index")
    print(
        f"2 repos added to a 12-repo feed, 10 shards, assign: index: re-ran {len(index['ran'])} shards, "
        f"moved {len(index['moved'])} digests"
    )
    assert len(index["ran"]) > len(index["holding"]) and index["moved"], index
