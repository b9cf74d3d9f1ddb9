"""The fetch stage under ``dvc repro``: what it does to the feed's entries reaches the digests (one spelling per
owner before any shard runs; a real repo keeps its digest whatever intruders the feed holds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import write_feed
from tests.fixtures.intruders import INTRUDERS, REAL
from tests.fixtures.sample import build_corpus, make_repo


@pytest.mark.slow
def test_fetch_gives_one_spelling_before_any_shard_runs(tmp_path: Path, workspace_factory) -> None:
    entries = build_corpus(tmp_path / "corpus", 4)  # owners org0, org1, org2, org0
    entries[3] = dict(entries[3], owner="ORG0")  # its file:// URL still ends in org0/project-003
    feed = write_feed(tmp_path / "feed.json", entries)
    ws = workspace_factory(str(feed))
    ws.set_params(shards={"batch_size": 1, "offsets": [0], "assign": "index"})
    out = ws.dvc("repro", "--single-item", "fetch")
    warned = [json.loads(ln) for ln in out.stderr.splitlines() if ln.startswith("{") and "feed entry changed" in ln]
    # named by fetch, before any shard runs; a tie of one each: 'ORG0' sorts first, so org0/project-000 is rewritten
    assert len(warned) == 1 and "org0/project-000" in json.dumps(warned), warned
    manifest = json.loads((ws.path / "data/manifests/shard-0.json").read_text())
    owners = {e["name"]: e["owner"] for e in manifest["repos"]}
    assert owners["project-003"] == owners["project-000"]
    ws.dvc("repro")
    shard = ws.path / "data/summaries/shard-0"
    assert sorted(p.name for p in shard.iterdir()) == sorted({o for o in owners.values()})
    index = json.loads((ws.path / "data/index.json").read_text())
    assert f"{owners['project-003']}/project-003" in index


@pytest.mark.slow
def test_real_repo_keeps_its_digest_end_to_end(workspace_factory, tmp_path: Path) -> None:
    """With `dvc repro` against a git server on 127.0.0.1: every intruder at once, and alphagov/router is digested
    from its real repository, at its real path; index.json has it; nothing lands at router.git.txt."""
    from tests.fixtures.faulty_git import publish_bare, serve_git

    root = tmp_path / "srv"
    make_repo(tmp_path / "router", {"README.md": "the real router\n"})
    publish_bare(tmp_path / "router", root, "alphagov", "router")
    feed = write_feed(tmp_path / "feed.json", [*INTRUDERS, REAL])
    with serve_git(root) as server:
        ws = workspace_factory(str(feed), allow_file_urls=False, extra_env=server.insteadof_env())
        ws.set_params(shards={"batch_size": 1, "offsets": [0]}, ingest={"allowed_hosts": ["github.com"]})
        ws.dvc("repro")
    out = ws.path / "data/summaries/shard-0/alphagov"
    assert sorted(p.name for p in out.iterdir()) == ["router.txt"]
    assert "the real router" in (out / "router.txt").read_text()
    index = json.loads((ws.path / "data/index.json").read_text())
    assert "alphagov/router" in json.dumps(index) and "router.git" not in json.dumps(index)
