"""The plots' data, unit by unit (the shard table, failures by reason, digest sizes against the cap), and the
committed page template against the installed bundle."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xgov_digests.results.report import failure_reason, failure_reasons, shard_table, size_distribution
from xgov_digests.schemas.stats import Row, to_frame

ROOT = Path(__file__).resolve().parents[3]


def rows() -> pd.DataFrame:
    def row(name: str, offset: int, status: str, **kw) -> Row:
        return Row(f"https://github.com/o/{name}", "o", name, offset, 12, None, status=status, **kw)

    return to_frame(
        [
            row("a", 0, "ok", digest_bytes=2048, clone_s=1.0, digest_s=0.1, total_s=1.2),
            row("b", 0, "cached", digest_bytes=4096),
            row(
                "c",
                11,
                "failed",
                error="clone failed after 3 attempts: https://github.com/o/c: timed out after 300 s",
                failure_kind="transient",
            ),
            row(
                "d",
                11,
                "failed",
                error="clone failed after 3 attempts: https://github.com/o/d: timed out after 12 s",
                failure_kind="transient",
            ),
            row("e", 11, "failed", error="URL not allowed: host gitlab.com", failure_kind="permanent"),
        ]
    )


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


def test_the_committed_template_is_what_the_installed_bundle_gives() -> None:
    from xgov_digests.results.plots_template import TEMPLATE, template

    committed = (ROOT / TEMPLATE).read_text(encoding="utf-8")
    assert committed == template(), "run: python -m xgov_digests.results.plots_template"
    assert committed.count("{plot_divs}") == 1 and "{scripts}" not in committed  # no CDN scripts added by DVC
    assert "html_template = plots/page.html" in (ROOT / ".dvc/config").read_text()
