"""End to end: ``dvc repro`` in a fresh git + DVC workspace, on real repos, a feed on 127.0.0.1 and gitingest."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import gitingest.output_formatter
import pandas as pd
import pytest

from tests.fixtures.feed_server import FeedServer, serve_feed
from xgov_digests.clone.git import clone
from xgov_digests.core.params import CloneSettings

pytestmark = pytest.mark.slow


def stock_body(url: str, tmp: Path, max_file_size: int) -> str:
    checkout = clone(url, tmp / url.rstrip("/").rsplit("/", 1)[-1], CloneSettings())
    _, tree, content = asyncio.run(gitingest.ingest_async(str(checkout.path), max_file_size=max_file_size))
    return f"{tree}\n{content}"


def test_repro_end_to_end(workspace_factory, corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, entries = corpus
    invalid = [{"owner": "x", "name": "no-url"}, {"owner": "../etc", "name": "p", "url": "https://github.com/a/b"}]
    missing = dict(entries[0], owner="org9", name="missing", url=(tmp_path / "missing").as_uri())
    body = json.dumps([*entries, *invalid, missing, entries[5]]).encode()  # entries[5] twice: deduped
    with serve_feed(FeedServer(body)) as feed:
        ws = workspace_factory(feed.url)
        ws.env.pop("PYTHONDONTWRITEBYTECODE", None)  # as on a developer's machine: the stages write __pycache__
        first = ws.dvc("repro")
        ran = ws.ran_stages(first.stdout)
        assert ran == ["fetch", *[f"shard@{k}" for k in range(10)], "aggregate"]

        stats = pd.read_parquet(ws.path / "data/stats.parquet")
        assert len(stats) == 21 and stats["url"].is_unique
        assert dict(stats["status"].value_counts()) == {"ok": 20, "failed": 1}
        digests = sorted((ws.path / "data/summaries").glob("shard-*/*/*.txt"))
        assert len(digests) == 20
        by_name = {(p.parent.name, p.stem): p for p in digests}
        assert len(by_name) == 20  # exactly one digest a repo across the shards

        monkeypatch.setattr(gitingest.output_formatter, "_format_token_count", lambda text: None)
        for entry in entries[:6]:
            digest = by_name[(entry["owner"], entry["name"])].read_text(encoding="utf-8")
            header, _, body_text = digest.partition("\n\n")
            assert body_text == stock_body(entry["url"], tmp_path / "stock", 524288)
            assert f"URL: {entry['url']}" in header and f"Pushed at: {entry['pushedAt']}" in header

        metrics = json.loads((ws.path / "reports/metrics.json").read_text())
        assert (metrics["repos"], metrics["ok"], metrics["failed"], metrics["processed"]) == (21, 20, 1, 20)
        assert metrics["digest_bytes"] == sum(p.stat().st_size for p in digests) == stats["digest_bytes"].sum()
        assert metrics["shards"] == 10 and all(isinstance(v, int | float) for v in metrics.values())  # flat
        shards = pd.read_csv(ws.path / "reports/plots/shards.csv")
        assert list(shards["offset"]) == list(range(10)) and shards["repos"].sum() == 21
        report = (ws.path / "reports/report.md").read_text()
        assert "org9/missing" in report and "| all | 21 | 20 |" in report
        shown = ws.dvc("metrics", "show").stdout
        assert "reports/metrics.json" in shown

        # The shard lists whole code folders as deps: the bytecode the stages wrote into them is no part of the hashes
        caches = [p for code in ("stages", "xgov_digests") for p in (ws.path / code).rglob("__pycache__")]
        assert any(p.parent.parent.name == "xgov_digests" for p in caches), "the stages wrote no bytecode"
        for cache in caches:
            shutil.rmtree(cache)
        status = ws.dvc("status").stdout
        assert status.strip() == "Data and pipelines are up to date.", status
        second = ws.dvc("repro")
        assert ws.ran_stages(second.stdout) == [], second.stdout  # the feed's ETag is unchanged: not even fetch
        assert "Stage 'shard@0' didn't change, skipping" in second.stdout
