"""Hostile feed entries: each becomes a clear warning or a failed row, never a crash, never a file outside data/."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import write_feed
from tests.fixtures.sample import make_repo

TOKEN = "ghp_SECRETtok3nMARKER"
CANONICAL = re.compile(r"https://[a-z0-9.-]+/[A-Za-z0-9._-]+/[A-Za-z0-9._-]+|file:///[^?#%\s]+")


def entry(owner, name, url=None, **kw) -> dict:
    return {
        "owner": owner,
        "name": name,
        "url": url or f"https://github.com/{owner}/{name}",
        "pushedAt": "2024-01-01T00:00:00Z",
        **kw,
    }


BAD_NAMES = [
    ("..", "repo"),
    ("owner", ".."),
    ("a/b", "repo"),
    ("owner", "re/po"),
    ("owner", "re\\po"),
    ("own\x00er", "r"),
    ("-rf", "repo"),
    ("owner", "-n"),
    ("owner", "."),
    ("own er", "repo"),
    ("owner", "x" * 300),
    ("CON", "repo"),
    ("owner", "nul"),
    ("owner", "lpt1.txt"),
    ("owner", "trailing."),
    ("owner", "x\n"),
    ("o\n", "repo"),
    ("owner", "tab\tname"),
    ("owner", "caf\u00e9"),
    ("owner", "til~de"),
]
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
# name -> (url, why fetch drops it); every one of them is dropped with a warning that shows the URL up to its host
BAD_URLS = {
    "http": ("http://github.com/o/http", "scheme 'http'"),
    "ssh": ("ssh://git@github.com/o/ssh", "scheme 'ssh'"),
    "git": ("git://github.com/o/git", "scheme 'git'"),
    "scp": ("git@github.com:o/scp.git", "not an absolute URL"),
    "ext": ("ext::sh -c touch% /tmp/xgov-pwned", "whitespace"),
    "inject": ("--upload-pack=touch /tmp/xgov-pwned", "whitespace"),
    "inject2": ("https://github.com/o/--upload-pack=touch", "disagrees with owner/name"),
    "fileurl": ("file:///etc", "disagrees with name"),
    "forged": ("https://github.com/attacker/forged", "disagrees with owner/name"),
    "port": ("https://github.com:8443/o/port", "has a port"),
    "dots": ("https://github.com/o/../o/dots", "'.' or '..'"),
    "percent": ("https://github.com/o/perc%65nt", "percent escapes"),
    "ipv6": ("https://[::1/o/ipv6", "has a port"),
    "nfkc": ("https://github.com\u2100evil.com/o/nfkc", "non-ASCII"),
    "tab": ("https://github.com/o/tab\t", "whitespace"),
    "newline": ("https://github.com/o/newline\n", "whitespace"),
    "creds": (f"https://user:{TOKEN}@github.com/o/creds", "userinfo"),
    "query": (f"https://github.com/o/query?access_token={TOKEN}", "query string"),
    "fragment": (f"https://github.com/o/fragment#{TOKEN}", "fragment"),
    "at-password": (f"https://user:p@ss{TOKEN}@github.com/o/at-password", "userinfo"),
    "space-password": (f"https://user:pa ss{TOKEN}@github.com/o/space-password", "whitespace"),
    "slash-password": (f"https://user:{TOKEN}/x@github.com/o/slash-password", "has a port"),
}
# raw JSON entries no standard JSON writer can write back -> why fetch drops them
BAD_VALUES = {
    '{"owner": "o", "name": "surrogate", "url": "https://github.com/o/surrogate", '
    '"description": "\\ud83d"}': "lone surrogate",
    '{"owner": "o", "name": "surrogate-key", "url": "https://github.com/o/surrogate-key", '
    '"\\udc00": 1}': "lone surrogate",
    '{"owner": "o", "name": "bigint", "url": "https://github.com/o/bigint", "stargazersCount": '
    + "9" * 5000
    + "}": "an integer of 5000 digits",
    '{"owner": "o", "name": "nan", "url": "https://github.com/o/nan", "score": NaN}': "NaN",
    '{"owner": "o", "name": "inf", "url": "https://github.com/o/inf", "score": -Infinity}': "-Infinity",
    '{"owner": "o", "name": "overflow", "url": "https://github.com/o/overflow", "score": 1e999}': "Infinity",
    '{"owner": "o", "name": "deep", "url": "https://github.com/o/deep", "topics": '
    + "[" * 200
    + "]" * 200
    + "}": "nested more than",
}


@pytest.mark.slow
def test_hostile_entries(workspace_factory, tmp_path: Path) -> None:
    good = tmp_path / "good"
    make_repo(good, {"README.md": "fine\n"})
    raw: list[tuple[str, str | None]] = [(json.dumps(entry("org", "good", good.as_uri())), None)]
    reserved = {"CON", "nul", "lpt1.txt", "trailing."}
    raw += [(json.dumps(entry(o, n)), "reserved" if {o, n} & reserved else "plain name") for o, n in BAD_NAMES]
    raw += [(json.dumps(e), "not") for e in BAD_TYPES]
    raw += [(json.dumps(entry("o", name, url)), why) for name, (url, why) in BAD_URLS.items()]
    raw += list(BAD_VALUES.items())
    raw += [
        (json.dumps(entry("o", "otherhost", "https://evil.example.com/o/otherhost")), None),  # a failed row
        # another repo, same path but for case; as refused as the file:// one, and its URL sorts later
        (json.dumps(entry("Org", "Good", "https://evil.example.com/Org/Good")), "same owner/name (ignoring case)"),
        (json.dumps(entry("org", "good", good.as_uri() + "/")), "same URL"),  # the same repo again: a duplicate
    ]
    feed = tmp_path / "feed.json"
    feed.write_text("[\n" + ",\n".join(text for text, _ in raw) + "\n]\n", encoding="utf-8")
    ws = workspace_factory(str(feed), allow_file_urls=False)
    ws.set_params(shards={"batch_size": 1, "offsets": [0]}, ingest={"allowed_hosts": ["github.com"]})
    outside_before = sorted(p for p in tmp_path.rglob("*") if "ws" not in p.relative_to(tmp_path).parts[:1])

    fetch = ws.python("-m", "stages.fetch")
    assert "Traceback" not in fetch.stderr
    drops = {
        d["index"]: d["reason"]
        for d in map(json.loads, fetch.stderr.splitlines())
        if d["message"] == "dropping feed entry"
    }
    expected = {i: why for i, (_, why) in enumerate(raw) if why}
    assert sorted(drops) == sorted(expected), fetch.stderr
    for index, why in expected.items():
        assert why in drops[index], (index, raw[index][0][:120], drops[index])
    for name, (url, _) in BAD_URLS.items():  # the URL is shown up to its host, never its path, query or secret
        reason = drops[next(i for i, (text, _) in enumerate(raw) if f'"name": "{name}"' in text)]
        assert url not in reason and "/o/" not in reason and TOKEN not in reason, reason
    snapshot = (ws.path / "data/repos.json").read_text(encoding="utf-8")
    records = json.loads(snapshot, parse_constant=lambda c: pytest.fail(f"{c} in the snapshot"))
    assert sorted(r["name"] for r in records) == ["good", "otherhost"]
    manifest = json.loads((ws.path / "data/manifests/shard-0.json").read_text())
    assert all(CANONICAL.fullmatch(r["url"]) for r in manifest["repos"]), manifest

    shard = ws.python("-m", "stages.shard", "--batch-size", "1", "--offset", "0")  # permanent failures only: exit 0
    rows = pd.read_parquet(ws.path / "data/stats/shard-0.parquet").set_index("name")
    assert rows.loc["good", "status"] == "failed" and "file:// URLs are not allowed" in rows.loc["good", "error"]
    other = rows.loc["otherhost"]
    assert other["status"] == "failed" and "not in ingest.allowed_hosts" in other["error"]
    assert set(rows["failure_kind"]) == {"permanent"}  # the URL policy's answer is a result, not a network fault

    ws.set_params(ingest={"allow_file_urls": True})
    ws.python("-m", "stages.shard", "--batch-size", "1", "--offset", "0")
    rows = pd.read_parquet(ws.path / "data/stats/shard-0.parquet").set_index("name")
    assert rows.loc["good", "status"] == "ok"

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
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"a": ' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply"),
        (b"NaN", "got NaN (not standard JSON)"),
        (b"9" * 5000, "got an integer of 5000 digits"),
        (b'"https://github.com/a/b"', "got a JSON string"),
        (b'[{"owner": "a", "name": "b", "url": "https://github.com/a/b", "pushedAt": NaN}]', "no usable repository"),
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
    assert "Traceback" not in result.stderr
    said = [line for line in result.stderr.splitlines() if not line.startswith("{")]  # not a JSON log line
    assert len(said) == 1 and said[0].startswith("fetch: error: ") and len(said[0]) < 300, said
    after = (ws.path / "data/repos.json").read_bytes(), (ws.path / "data/manifests/shard-0.json").read_bytes()
    assert after == before


@pytest.mark.slow
def test_fifty_megabyte_feed(workspace_factory, tmp_path: Path) -> None:
    description = "d" * 250
    entries = [entry(f"org{i % 500}", f"repo-{i}", description=description) for i in range(160_000)]
    feed = write_feed(tmp_path / "feed.json", entries)
    assert feed.stat().st_size > 50 * 1024 * 1024
    ws = workspace_factory(str(feed))
    ws.set_params(shards={"assign": "index"})  # index: every shard exactly a tenth of the feed
    ws.python("-m", "stages.fetch", timeout=120)
    sizes = [len(json.loads((ws.path / f"data/manifests/shard-{k}.json").read_text())["repos"]) for k in range(10)]
    assert sizes == [16_000] * 10


@pytest.mark.slow
def test_a_feed_entry_cannot_forge_a_digest(workspace_factory, tmp_path: Path) -> None:
    """Another repo's URL under a real owner/name, fake header lines in pushedAt, a date that sorts last: with a
    real `dvc repro` against a git server on 127.0.0.1, every digest holds the named repository and a true header."""
    from tests.fixtures.faulty_git import publish_bare, serve_git

    root = tmp_path / "srv"
    for owner, text in (("alphagov", "the real govuk-frontend"), ("attacker", "EVIL CONTENT")):
        make_repo(tmp_path / owner, {"README.md": text + "\n"})
        publish_bare(tmp_path / owner, root, owner, "govuk-frontend")
    make_repo(tmp_path / "dated", {"README.md": "dated\n"})
    publish_bare(tmp_path / "dated", root, "alphagov", "dated")
    legit = entry("alphagov", "govuk-frontend")
    forged = entry(
        "alphagov", "govuk-frontend", "https://github.com/attacker/govuk-frontend", pushedAt="2030-01-01T00:00:00Z"
    )
    late = entry("alphagov", "govuk-frontend", "https://github.com/alphagov/govuk-frontend.git", pushedAt="zzzz")
    fake_header = entry("alphagov", "dated", pushedAt=f"2024\nCommit: {'0' * 40}\nFiles analyzed: 9999")
    feed = write_feed(tmp_path / "feed.json", [forged, late, legit, fake_header])
    with serve_git(root) as server:
        ws = workspace_factory(str(feed), extra_env=server.insteadof_env())
        ws.set_params(shards={"batch_size": 1, "offsets": [0]})
        result = ws.dvc("repro")
        assert server.packs["attacker/govuk-frontend"] == 0  # never even cloned
    out = ws.path / "data/summaries/shard-0/alphagov"
    digest = (out / "govuk-frontend.txt").read_text()
    assert "the real govuk-frontend" in digest and "EVIL" not in digest
    assert digest.startswith("Repository: alphagov/govuk-frontend\nURL: https://github.com/alphagov/govuk-frontend\n")
    assert "Pushed at: 2024-01-01T00:00:00Z\n" in digest  # the real date won over "zzzz"
    header = (out / "dated.txt").read_text().split("\n\n", 1)[0].splitlines()
    assert [line.split(":")[0] for line in header] == ["Repository", "URL", "Commit", "Pushed at", "Files analyzed"]
    assert "Pushed at: unknown" in header and f"Commit: {'0' * 40}" not in header
    logs = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any(r.get("reason", "").startswith("pushedAt '2024\\nCommit") for r in logs)
