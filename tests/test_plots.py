"""Seeing a run: the DVC plots aggregate feeds, and make shards N=."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import Workspace, write_feed
from xgov_digests.report import failure_reason, failure_reasons, shard_table, size_distribution
from xgov_digests.stats import Row, to_frame

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parents[1]
TITLES = {
    "Wall time per shard", "Repos per shard by status", "Seconds per cloned repo, by percentile",
    "Digest size by percentile, and the cap", "Failed repos by reason",
}  # fmt: skip


def make(ws: Workspace, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    shutil.copy2(ROOT / "Makefile", ws.path / "Makefile")
    return ws.run("make", "--no-print-directory", "-o", f"{VENV}/.installed", f"VENV={VENV}", *args, check=check)


def html_specs(path: Path) -> dict[str, dict]:
    """The vega-lite specs embedded in DVC's HTML, by title."""
    specs = [json.loads(m) for m in re.findall(r"var spec = (\{.*\});\s*$", path.read_text(), re.M)]
    return {s["title"]["text"] if isinstance(s["title"], dict) else s["title"]: s for s in specs}


def series(spec: dict, field: str = "field") -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for v in spec["data"]["values"]:
        out.setdefault(v.get(field, ""), []).append(v)
    return out


# ---- the plot data, unit by unit ----


def rows() -> pd.DataFrame:
    def row(name: str, offset: int, status: str, **kw) -> Row:
        return Row(f"https://github.com/o/{name}", "o", name, offset, 12, None, status=status, **kw)

    return to_frame([
        row("a", 0, "ok", digest_bytes=2048, clone_s=1.0, digest_s=0.1, total_s=1.2),
        row("b", 0, "cached", digest_bytes=4096),
        row("c", 11, "failed", error="clone failed after 3 attempts: https://github.com/o/c: timed out after 300 s",
            failure_kind="transient"),
        row("d", 11, "failed", error="clone failed after 3 attempts: https://github.com/o/d: timed out after 12 s",
            failure_kind="transient"),
        row("e", 11, "failed", error="URL not allowed: host gitlab.com", failure_kind="permanent"),
    ])  # fmt: skip


def test_shard_table_sorts_as_numbers_and_keeps_wall_time() -> None:
    table = shard_table(rows(), list(range(12)), {0: 3.21, 11: None})
    assert list(table["shard"])[:3] == ["00", "01", "02"] and table["shard"].iloc[-1] == "11"
    assert table.loc[0, "wall_s"] == 3.21 and pd.isna(table.loc[11, "wall_s"])
    assert table.loc[0, ["ok", "cached", "failed"]].tolist() == [1, 1, 0] and table.loc[11, "failed"] == 3


def test_failures_group_by_kind_and_message_without_urls_or_numbers() -> None:
    assert failure_reason("transient", "clone failed after 3 attempts: https://x/y: boom") == (
        "transient: clone failed after N attempts"
    )
    assert failure_reason(None, None) == "unclassified: no message"
    table = failure_reasons(rows())
    assert table.to_dict("records") == [
        {"reason": "transient: clone failed after N attempts", "repos": 2},
        {"reason": "permanent: URL not allowed", "repos": 1},
    ]
    assert failure_reasons(rows().query("status != 'failed'")).empty


def test_sizes_mark_the_cap() -> None:
    sizes = size_distribution(rows(), 524288)
    assert len(sizes) == 101 and set(sizes["cap_kb"]) == {512.0}
    assert sizes["digest_kb"].iloc[0] == 2.0 and sizes["digest_kb"].iloc[-1] == 4.0


# ---- dvc plots show / diff and make plots on a real run ----


@pytest.mark.slow
def test_make_plots_renders_every_plot_with_its_series_and_diffs_two_nights(
    workspace_factory, corpus, tmp_path: Path
) -> None:
    _, entries = corpus
    missing = dict(entries[0], owner="org9", name="missing", url=(tmp_path / "missing").as_uri())
    ws = workspace_factory(str(write_feed(tmp_path / "feed.json", [*entries[:8], missing])))
    ws.set_params(shards={"batch_size": 4, "offsets": [0, 1, 2, 3]}, ingest={"max_summary_bytes": 4096})
    ws.dvc("repro")
    ws.commit("night 1")

    out = make(ws, "plots").stdout
    html = ws.path / "dvc_plots" / "index.html"
    assert f"plots: {ws.path}/dvc_plots/index.html" in out and html.exists()
    specs = html_specs(html)
    assert set(specs) == TITLES
    walls = specs["Wall time per shard"]["data"]["values"]
    assert sorted(v["shard"] for v in walls) == ["0", "1", "2", "3"] and all(float(v["wall_s"]) > 0 for v in walls)
    status = series(specs["Repos per shard by status"])
    assert set(status) == {"ok", "cached", "empty", "failed"}
    assert sum(int(v["dvc_inferred_y_value"]) for s in status.values() for v in s) == 9
    assert sum(int(v["dvc_inferred_y_value"]) for v in status["failed"]) == 1
    seconds = series(specs["Seconds per cloned repo, by percentile"])
    assert set(seconds) == {"clone_s", "digest_s"} and all(len(s) == 101 for s in seconds.values())
    sizes = series(specs["Digest size by percentile, and the cap"])
    assert set(sizes) == {"digest_kb", "cap_kb"} and {v["cap_kb"] for v in sizes["cap_kb"]} == {"4.0"}
    assert max(float(v["digest_kb"]) for v in sizes["digest_kb"]) <= 4.0
    failures = specs["Failed repos by reason"]["data"]["values"]
    assert len(failures) == 1 and failures[0]["repos"] == "1" and "clone" in failures[0]["reason"], failures
    night1 = {f: (ws.path / "reports/plots" / f).read_text() for f in ("sizes.csv", "failures.csv")}

    # night 2, the same repos from the digest cache: the size and failure data are byte-identical (only timings and
    # the ok/cached split move); dvc plots diff HEAD~1 shows both nights with no other flag
    ws.dvc("repro", "--force")
    assert {f: (ws.path / "reports/plots" / f).read_text() for f in night1} == night1
    ws.commit("night 2")
    assert ws.dvc("plots", "diff", "HEAD~1").returncode == 0
    diff = json.loads(ws.dvc("plots", "diff", "HEAD~1", "--json").stdout)["data"]
    assert set(diff) == TITLES
    status = diff["Repos per shard by status"][0]["content"]["data"]["values"]
    cached = {v["rev"]: 0 for v in status}
    for v in status:
        if v["field"] == "cached":
            cached[v["rev"]] += int(v["dvc_inferred_y_value"])
    assert cached == {"HEAD~1": 0, "workspace": 8}
    out = make(ws, "plots", "REV=HEAD~1").stdout
    assert "dvc_plots/index.html" in out and set(html_specs(html)) == TITLES


# ---- make shards N= ----


@pytest.mark.slow
def test_make_shards_sets_both_keys_keeps_the_layout_and_says_what_repro_will_do(
    workspace_factory, corpus, tmp_path: Path
) -> None:
    _, entries = corpus
    ws = workspace_factory(str(write_feed(tmp_path / "feed.json", entries[:6])))
    before = (ws.path / "params.yaml").read_text()

    out = make(ws, "shards", "N=4").stdout
    after = (ws.path / "params.yaml").read_text()
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    comment = "# must be exactly 0 .. batch_size-1 (DVC's foreach needs the list)"
    assert changed == [
        ("  batch_size: 10", "  batch_size: 4"),
        (f"  offsets: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]  {comment}",
         f"  offsets: [0, 1, 2, 3]                    {comment}"),
    ]
    assert "shards.batch_size 10 -> 4" in out
    assert "next dvc repro runs: fetch, shard@0..3, aggregate" in out, out
    ws.dvc("repro")
    ws.commit("4 shards")

    out = make(ws, "shards", "N=2").stdout
    assert "fetch will remove shard@2..3" in out and "next dvc repro runs: fetch, shard@0..1, aggregate" in out, out

    ws.set_params(shards={"batch_size": 3})  # only one of the two edited by hand: fetch names the command
    failed = ws.dvc("repro", check=False)
    assert failed.returncode != 0 and "make shards N=3" in failed.stdout + failed.stderr
    missing_n = make(ws, "shards", check=False)
    assert missing_n.returncode == 2 and "make shards: set N=" in missing_n.stderr
