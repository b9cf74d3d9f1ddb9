"""Hostile feed entries: each becomes a clear warning or a failed row, never a crash, never a file outside data/."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import write_feed
from tests.fixtures.sample import make_repo

TOKEN = "ghp_SECRETtok3nMARKER"


def entry(owner, name, url=None, **kw) -> dict:
    return {
        "owner": owner,
        "name": name,
        "url": url or f"https://github.com/{owner}/{name}",
        "pushedAt": "2024-01-01T00:00:00Z",
        **kw,
    }


BAD_NAMES = [
    ("..", "repo"), ("owner", ".."), ("a/b", "repo"), ("owner", "re/po"), ("owner", "re\\po"), ("own\x00er", "r"),
    ("-rf", "repo"), ("owner", "-n"), ("owner", "."), ("own er", "repo"), ("owner", "x" * 300), ("CON", "repo"),
    ("owner", "nul"), ("owner", "lpt1.txt"), ("owner", "trailing."),
]  # fmt: skip
BAD_TYPES = [
    {"owner": 5, "name": "r", "url": "https://github.com/o/r"},
    {"owner": ["o"], "name": "r", "url": "https://github.com/o/r"},
    {"owner": "o", "name": None, "url": "https://github.com/o/r"},
    {"owner": "o", "name": "r", "url": 42},
    {"owner": "o", "name": "r"},
    {"name": "r", "url": "https://github.com/o/r"},
    None,
    7,
    "https://github.com/o/r",
    ["o", "r"],
]
BAD_URLS = {  # name -> (url, the failed row's error)
    "http": ("http://github.com/o/http", "scheme 'http'"),
    "ssh": ("ssh://git@github.com/o/ssh", "scheme 'ssh'"),
    "git": ("git://github.com/o/git", "scheme 'git'"),
    "scp": ("git@github.com:o/scp.git", None),  # not an absolute URL: dropped by fetch
    "ext": ("ext::sh -c touch% /tmp/xgov-pwned", None),
    "inject": ("--upload-pack=touch /tmp/xgov-pwned", None),
    "inject2": ("https://github.com/o/--upload-pack=touch", "plain names"),
    "otherhost": ("https://evil.example.com/o/otherhost", "not in ingest.allowed_hosts"),
    "creds": (f"https://user:{TOKEN}@github.com/o/creds", "credentials"),
    "fileurl": ("file:///etc", "file:// URLs are not allowed"),
}


def test_hostile_entries(workspace_factory, tmp_path: Path) -> None:
    good = tmp_path / "good"
    make_repo(good, {"README.md": "fine\n"})
    feed_entries = [entry("org", "good", good.as_uri())]
    feed_entries += [entry(o, n) for o, n in BAD_NAMES]
    feed_entries += BAD_TYPES
    feed_entries += [entry("o", name, url) for name, (url, _) in BAD_URLS.items()]
    feed_entries += [
        entry("Org", "Good", good.as_uri() + "-elsewhere"),  # another repo, same path but for case
        entry("org", "good", good.as_uri() + "/"),
    ]  # the same repo again
    feed = write_feed(tmp_path / "feed.json", feed_entries)
    ws = workspace_factory(str(feed), allow_file_urls=False)
    ws.set_params(shards={"batch_size": 1, "offsets": [0]}, ingest={"allowed_hosts": ["github.com"]})
    outside_before = sorted(p for p in tmp_path.rglob("*") if "ws" not in p.relative_to(tmp_path).parts[:1])

    fetch = ws.python("-m", "stages.fetch")
    drops = [json.loads(line) for line in fetch.stderr.splitlines() if "dropping feed entry" in line]
    expected_drops = len(BAD_NAMES) + len(BAD_TYPES) + sum(1 for _, err in BAD_URLS.values() if err is None) + 1
    assert len(drops) == expected_drops, fetch.stderr
    assert all(d["reason"] for d in drops)

    shard = ws.python("-m", "stages.shard", "--batch-size", "1", "--offset", "0", check=False)
    assert shard.returncode == 1  # most repos failed: more than max_failure_ratio, DVC would record nothing
    rows = pd.read_parquet(ws.path / "data/stats/shard-0.parquet").set_index("name")
    assert rows.loc["good", "status"] == "failed" and "file:// URLs are not allowed" in rows.loc["good", "error"]
    for name, (_, error) in BAD_URLS.items():
        if error is None:
            assert name not in rows.index
        else:
            assert rows.loc[name, "status"] == "failed" and error in rows.loc[name, "error"], (name, rows.loc[name])
    assert rows.loc["creds", "url"] == "https://***@github.com/o/creds"

    ws.set_params(ingest={"allow_file_urls": True})
    ws.python("-m", "stages.shard", "--batch-size", "1", "--offset", "0", check=False)
    rows = pd.read_parquet(ws.path / "data/stats/shard-0.parquet").set_index("name")
    assert rows.loc["good", "status"] == "ok"
    assert rows.loc["fileurl", "status"] == "failed"  # file:///etc: not a git repository

    # nothing was written outside the workspace, and no injected command ran
    outside_after = sorted(p for p in tmp_path.rglob("*") if "ws" not in p.relative_to(tmp_path).parts[:1])
    assert outside_after == outside_before
    assert not Path("/tmp/xgov-pwned").exists()
    written = [p for p in (ws.path / "data").rglob("*") if p.is_file()]
    assert all(p.resolve().is_relative_to((ws.path / "data").resolve()) for p in written)
    for path in written:
        assert TOKEN.encode() not in path.read_bytes(), path
    assert TOKEN not in fetch.stderr + shard.stderr


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"repos": []}', "must be a JSON list"),
        (b"[]", "no usable repository"),
        (b'[{"owner": "a", "name": "\xff\xfe"}]', "not valid JSON"),
        (b'[{"owner": "a", "name": "b", "url": "https://github.com/a/b"}', "not valid JSON"),
    ],
)
def test_bad_feed_fails_the_stage_and_keeps_the_previous_snapshot(
    workspace_factory, tmp_path: Path, body: bytes, message: str
) -> None:
    feed = write_feed(tmp_path / "feed.json", [entry("a", "b")])
    ws = workspace_factory(str(feed))
    ws.python("-m", "stages.fetch")
    before = (ws.path / "data/repos.json").read_bytes(), (ws.path / "data/manifests/shard-0.json").read_bytes()
    feed.write_bytes(body)
    result = ws.python("-m", "stages.fetch", check=False)
    assert result.returncode == 2 and message in result.stderr
    assert result.stderr.count("Traceback") == 0
    after = (ws.path / "data/repos.json").read_bytes(), (ws.path / "data/manifests/shard-0.json").read_bytes()
    assert after == before


def test_fifty_megabyte_feed(workspace_factory, tmp_path: Path) -> None:
    description = "d" * 250
    entries = [entry(f"org{i % 500}", f"repo-{i}", description=description) for i in range(160_000)]
    feed = write_feed(tmp_path / "feed.json", entries)
    assert feed.stat().st_size > 50 * 1024 * 1024
    ws = workspace_factory(str(feed))
    ws.python("-m", "stages.fetch", timeout=120)
    sizes = [len(json.loads((ws.path / f"data/manifests/shard-{k}.json").read_text())["repos"]) for k in range(10)]
    assert sizes == [16_000] * 10
