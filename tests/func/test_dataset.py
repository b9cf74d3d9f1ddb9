"""The consumers' dataset on a real run: read with pandas and DuckDB, every row's text byte-identical to its digest
file, tokens as counted, fetched with dvc artifacts get; token totals in dvc metrics show."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import write_feed
from xgov_digests.core.files import digest_path, summaries_path
from xgov_digests.core.params import IngestParams
from xgov_digests.digest.tokens import count_tokens
from xgov_digests.results.dataset import COLUMNS, bucket, part_path

pytestmark = pytest.mark.slow


def mismatches(table: pd.DataFrame, root: Path) -> list[str]:
    """The rows whose text is not byte for byte their digest file (under ``root``'s shard folders)."""
    files = {}
    for shard in (root / "data" / "summaries").iterdir():
        for path in shard.rglob("*.txt"):
            files[path.relative_to(shard).as_posix()] = path
    return [
        f"{r.owner}/{r.name}"
        for r in table.itertuples()
        if files.get(f"{r.owner}/{r.name}.txt") is None
        or files[f"{r.owner}/{r.name}.txt"].read_bytes() != r.text.encode("utf-8")
    ]


def test_the_dataset_is_every_digest_read_by_pandas_and_duckdb(workspace_factory, corpus, tmp_path: Path) -> None:
    import duckdb

    _, entries = corpus
    missing = dict(entries[0], owner="org9", name="missing", url=(tmp_path / "missing").as_uri())
    ws = workspace_factory(str(write_feed(tmp_path / "feed.json", [*entries[:7], missing])))
    ws.set_params(shards={"batch_size": 2, "offsets": [0, 1]})
    ws.dvc("repro")
    ws.commit("night 1")
    assert ws.dvc("status").stdout.strip() == "Data and pipelines are up to date."
    stats = pd.read_parquet(ws.path / "data/stats.parquet")
    digested = stats[stats["status"].isin(["ok", "cached"])]
    assert len(digested) == 7 and (stats["status"] == "failed").sum() == 1

    table = pd.read_parquet(ws.path / "data/dataset")  # one line, the folder
    assert list(table.columns) == [name for name, _ in COLUMNS] and len(table) == 7
    assert mismatches(table, ws.path) == []
    assert set(table["url"]) == set(digested["url"]) and "missing" not in set(table["name"])
    by_url = digested.set_index("url")
    for r in table.itertuples():
        assert r.tokens == by_url.loc[r.url, "tokens"] == count_tokens(r.text.encode(), IngestParams.token_encoding) > 0
        assert (r.license, r.language) == ("MIT", "Python") and r.commit == by_url.loc[r.url, "commit"]
        assert (ws.path / part_path(bucket(r.url))).exists()

    glob = str(ws.path / "data/dataset/*.parquet")
    con = duckdb.connect()
    assert con.execute(f"select count(*), sum(tokens) from read_parquet('{glob}')").fetchone() == (
        7,
        int(digested["tokens"].sum()),
    )
    from_duck = con.execute(f"select owner, name, text from read_parquet('{glob}')").df()
    assert mismatches(from_duck, ws.path) == []

    # the comparison can fail: one changed byte in one digest is found
    victim = digest_path(
        summaries_path(int(digested.iloc[0]["offset"]), ws.path / "data/summaries"),
        digested.iloc[0]["owner"],
        digested.iloc[0]["name"],
    )
    original = victim.read_bytes()
    victim.write_bytes(original[:-1] + b"#")
    assert mismatches(table, ws.path) == [f"{digested.iloc[0]['owner']}/{digested.iloc[0]['name']}"]
    victim.write_bytes(original)

    metrics = json.loads(ws.dvc("metrics", "show", "--json").stdout)
    shown = next(iter(metrics.values()))["data"]["reports/metrics.json"]["data"]
    assert shown["tokens"] == int(digested["tokens"].sum()) and shown["tokens_max"] == int(digested["tokens"].max())

    # a consumer: dvc get by path, or dvc artifacts get by name once a version is tagged (GTO's name@vX.Y.Z)
    ws.dvc("push")
    out = tmp_path / "consumer"
    expected = table.sort_values("url").reset_index(drop=True)
    ws.dvc("get", str(ws.path), "data/dataset", "-o", str(out / "by-path"))
    assert pd.read_parquet(out / "by-path").sort_values("url").reset_index(drop=True).equals(expected)
    ws.git("-c", "user.name=p", "-c", "user.email=p@example.invalid", "tag", "-a", "digests@v1.0.0", "-m", "digests")
    ws.dvc("artifacts", "get", str(ws.path), "digests", "-o", str(out / "by-name"))
    assert pd.read_parquet(out / "by-name").sort_values("url").reset_index(drop=True).equals(expected)

    # night 2, every repo from the digest cache (its entries carry the counts): the same tokens, and every dataset
    # file byte-identical, so DVC has nothing new to upload for it
    before = {p.name: p.read_bytes() for p in (ws.path / "data/dataset").iterdir()}
    written = {p.name: p.stat().st_mtime_ns for p in (ws.path / "data/dataset").iterdir()}
    ws.dvc("repro", "--force")
    again = pd.read_parquet(ws.path / "data/stats.parquet")
    assert set(again["status"]) == {"cached", "failed"}
    assert again.set_index("url")["tokens"].sort_index().equals(stats.set_index("url")["tokens"].sort_index())
    assert {p.name: p.read_bytes() for p in (ws.path / "data/dataset").iterdir()} == before
    assert {p.name: p.stat().st_mtime_ns for p in (ws.path / "data/dataset").iterdir()} == written  # none rewritten

    # a bucket to rebuild reads its digests and checks each against its row's SHA-256
    victim.write_bytes(original[:-1] + b"#")
    (ws.path / part_path(bucket(digested.iloc[0]["url"]))).unlink()
    result = ws.python("-m", "stages.aggregate", check=False)
    assert result.returncode == 2 and "is not the digest its stats row records" in result.stderr, result.stderr
