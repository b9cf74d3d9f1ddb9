"""What a shard process loads: gitingest and pandas never (its digest children load gitingest), tiktoken only on a
cache miss; the hash seed from dvc.yaml's cmd."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import write_feed
from xgov_digests.schemas.stats import read_stats

ROOT = Path(__file__).resolve().parents[3]

# stages.shard's __main__ in this interpreter, then which of the heavy modules it loaded
PROBE = """
import json, runpy, sys
sys.argv = ["stages.shard", *sys.argv[1:]]
try:
    runpy.run_module("stages.shard", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
heavy = ("gitingest", "loguru", "pandas", "requests", "tiktoken")
print(json.dumps({"code": code, "loaded": sorted(m for m in heavy if m in sys.modules)}))
"""


def _probe(ws, feed: Path) -> dict:
    args = ["--batch-size", "1", "--offset", "0", "--feed", str(feed)]
    result = ws.python("-c", PROBE, *args, env={"PYTHONHASHSEED": "0"})  # the seed set: no re-exec
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_shard_loads_neither_gitingest_nor_pandas(workspace_factory, corpus, tmp_path: Path) -> None:
    """Digests are made in the pool's children: the shard plans the clones and counts tokens (loaded on a miss
    only, which shows the probe sees a module loaded late), and a cache hit loads nothing heavy."""
    _, entries = corpus
    feed = write_feed(tmp_path / "feed.json", entries[:3])
    ws = workspace_factory(str(feed))
    cold = _probe(ws, feed)
    assert cold["code"] == 0 and cold["loaded"] == ["requests", "tiktoken"]
    first = read_stats(ws.path / "data/stats/shard-0.parquet")
    assert list(first["status"]) == ["ok"] * 3
    digests = {p.name: p.read_bytes() for p in (ws.path / "data/summaries/shard-0").rglob("*.txt")}
    warm = _probe(ws, feed)
    assert warm["code"] == 0 and warm["loaded"] == ["requests"]  # --feed downloads; nothing else heavy
    again = read_stats(ws.path / "data/stats/shard-0.parquet")
    assert list(again["status"]) == ["cached"] * 3
    assert list(again["commit"]) == list(first["commit"]) and list(again["files"]) == list(first["files"])
    assert {p.name: p.read_bytes() for p in (ws.path / "data/summaries/shard-0").rglob("*.txt")} == digests


def test_stats_written_without_pandas_read_back_with_the_schema(tmp_path: Path) -> None:
    """write_stats builds the table with pyarrow: read_stats gives the dtypes pandas' own writer gave."""
    from xgov_digests.schemas.stats import DTYPES, Row, to_frame, wall_seconds, write_stats

    rows = [
        Row("https://github.com/b/x", "b", "x", 0, 2, None, error="gone", failure_kind="permanent"),
        Row(
            "https://github.com/A/y",
            "A",
            "y",
            0,
            2,
            "2024-01-01T00:00:00Z",
            status="ok",
            commit="c" * 40,
            files=3,
            digest_bytes=10,
            truncated=True,
            clone_s=0.5,
            digest_s=0.01,
            total_s=0.6,
        ),
    ]
    path = tmp_path / "s.parquet"
    write_stats(path, rows, wall_s=1.25)
    frame = read_stats(path)
    expected = to_frame(sorted(rows, key=lambda r: r.url.lower()))
    assert frame.to_dict("records") == expected.to_dict("records") or frame.equals(expected)
    assert {c: str(t) for c, t in frame.dtypes.items()} == {c: str(t) for c, t in expected.dtypes.items()}
    assert list(frame["name"]) == ["y", "x"] and set(DTYPES) == set(frame.columns)
    assert wall_seconds(path) == 1.25
    write_stats(path, [])
    assert read_stats(path).shape == (0, len(DTYPES))


def test_dvc_yaml_pins_the_hash_seed_for_the_shard() -> None:
    """The shard's cmd sets PYTHONHASHSEED=0, which saves its re-exec; run without it, the CLI still re-executes
    itself with the seed (tests/func/test_repo_trust.py::test_same_bytes_under_any_hash_seed)."""
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["shard"]["do"]
    assert stage["cmd"].startswith("PYTHONHASHSEED=0 python -m stages.shard ")
    assert 'os.environ.get("PYTHONHASHSEED") != "0"' in (ROOT / "stages/shard.py").read_text()
    assert sys.executable
