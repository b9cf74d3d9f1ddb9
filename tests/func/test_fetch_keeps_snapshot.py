"""A feed that fails (unreachable, 4xx, 5xx, a bad or cut-off body) leaves the last good snapshot: data/repos.json and
the manifests byte-identical, dvc status clean but for fetch, make retry still working on the kept manifests."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import Workspace
from tests.fixtures.feed_server import Answer, FeedServer, serve_feed

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parents[1]
FAILURES = {
    "404": Answer(404),
    "500": Answer(500),
    "not JSON": Answer(200, b"<html>maintenance</html>"),
    "cut off": Answer(200, b"", cut_after=10),
    "no answer in time": Answer(200, b"", delay=4),
}


def snapshot(ws: Workspace) -> dict[str, bytes]:
    files = [ws.path / "data/repos.json", *sorted((ws.path / "data/manifests").iterdir())]
    return {str(p.relative_to(ws.path)): p.read_bytes() for p in files}


def test_a_failed_fetch_keeps_the_last_good_snapshot(workspace_factory, corpus, tmp_path: Path) -> None:
    _, entries = corpus
    entries = entries[:6]
    victim = Path(entries[2]["url"].removeprefix("file://"))
    hidden = tmp_path / "hidden"
    victim.rename(hidden)  # this repo's server is down tonight: its shard has a failed row
    try:
        with serve_feed(FeedServer(json.dumps(entries).encode())) as feed:
            ws = workspace_factory(feed.url)
            ws.set_params(shards={"batch_size": 3, "offsets": [0, 1, 2]}, feed={"timeout": 1, "retries": 0})
            ws.dvc("repro")
            ws.commit("night 1")
            good = snapshot(ws)
            assert len(good) == 4

            for form, answer in FAILURES.items():
                feed.script, feed.etag = [answer], f'"{form}"'  # a new ETag: DVC sees the feed changed, runs fetch
                result = ws.dvc("repro", check=False)
                errors = [ln for ln in result.stderr.splitlines() if ln.startswith("fetch: error: ")]
                assert result.returncode != 0 and len(errors) == 1, (form, result.stdout, result.stderr)
                assert "Traceback" not in result.stderr, form
                assert snapshot(ws) == good, form
                status = ws.dvc("status").stdout.split()
                assert status == ["fetch:", "changed", "deps:", "modified:", feed.url], (form, status)
                assert ws.git("status", "--porcelain") == "", form

            victim.parent.mkdir(parents=True, exist_ok=True)
            hidden.rename(victim)  # back up; the feed is still down
            feed.script = [Answer(404)] * 3
            shutil.copy2(ROOT / "Makefile", ws.path / "Makefile")
            result = ws.run("make", "--no-print-directory", "-o", f"{VENV}/.installed", f"VENV={VENV}", "retry")
            assert "fetch" not in ws.ran_stages(result.stdout) and len(ws.ran_stages(result.stdout)) == 2, result.stdout
            stats = pd.read_parquet(ws.path / "data/stats.parquet")
            assert len(stats) == 6 and "failed" not in set(stats["status"])
            assert snapshot(ws) == good
    finally:
        if hidden.exists():
            hidden.rename(victim)
