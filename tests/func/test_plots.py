"""Seeing a run: the DVC plots aggregate feeds, and make shards N=."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from tests.conftest import Workspace, write_feed

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parents[1]
TITLES = {
    "Wall time per shard",
    "Repos per shard by status",
    "Seconds per cloned repo, by percentile",
    "Digest size by percentile, and the cap",
    "Tokens per digest by percentile",
    "Failed repos by reason",
}


def make(ws: Workspace, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    shutil.copy2(ROOT / "Makefile", ws.path / "Makefile")
    return ws.run(
        "make",
        "--no-print-directory",
        "-o",
        f"{VENV}/.installed",
        "-o",
        f"{VENV}/.installed-plots",
        f"VENV={VENV}",
        *args,
        check=check,
    )


def html_specs(path: Path) -> dict[str, dict]:
    """The vega-lite specs embedded in DVC's HTML, by title."""
    specs = [json.loads(m) for m in re.findall(r"var spec = (\{.*\});\s*$", path.read_text(), re.M)]
    return {s["title"]["text"] if isinstance(s["title"], dict) else s["title"]: s for s in specs}


BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# No network at all: every host name fails to resolve and every request goes to a proxy that is not there.
OFFLINE_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=http://127.0.0.1:9",
    "--virtual-time-budget=20000",
    "--hide-scrollbars",
)
SHOTS = Path(os.environ.get("XGOV_SHOTS", ROOT.parent / "people-shots"))


def browser() -> str:
    for name in BROWSERS:
        if found := shutil.which(name):
            return found
    reason = "no Chromium to render the plots page: apt-get install -y chromium (CI installs it)"
    if os.environ.get("XGOV_NEED_BROWSER"):  # .ci/run sets it: there a missing browser fails, never skips
        pytest.fail(f"{reason}; XGOV_NEED_BROWSER is set")
    print(f"SKIPPED: {reason}")
    pytest.skip(reason)


def in_browser(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    profile.mkdir()
    return subprocess.run(
        [browser(), *OFFLINE_FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True,
        timeout=180,
        check=True,
    )


def inked_pixels(data: bytes) -> tuple[int, int, int]:
    """Width, height and the number of pixels that are not white, of an 8-bit RGB or RGBA PNG (Chromium's)."""
    import numpy as np

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, header = 8, [], b""
    while pos < len(data):
        (size,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + size]
        header = body if kind == b"IHDR" else header
        chunks += [body] if kind == b"IDAT" else []
        pos += 12 + size
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header[:13])
    assert depth == 8 and color in (2, 6) and not interlace, (depth, color, interlace)
    bpp = 3 if color == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(chunks)), np.uint8).reshape(height, width * bpp + 1)
    image, prev = np.zeros((height, width * bpp), np.uint8), np.zeros(width * bpp, np.uint8)
    for y in range(height):  # undo each row's filter (PNG spec, section 9)
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if kind == 1:
            line = np.cumsum(line.reshape(width, bpp), axis=0).reshape(-1) & 255
        elif kind == 2:
            line = (line + prev) & 255
        elif kind in (3, 4):
            out, up = line.tolist(), prev.tolist()  # plain ints: far faster than numpy scalars here
            for i in range(width * bpp):
                left = out[i - bpp] if i >= bpp else 0
                corner = up[i - bpp] if i >= bpp else 0
                if kind == 3:
                    out[i] = (out[i] + (left + up[i]) // 2) & 255
                else:
                    pa, pb, pc = abs(up[i] - corner), abs(left - corner), abs(left + up[i] - 2 * corner)
                    out[i] = (out[i] + (left if pa <= pb and pa <= pc else up[i] if pb <= pc else corner)) & 255
            line = np.array(out)
        image[y] = line.astype(np.uint8)
        prev = image[y]
    rgb = image.reshape(height, width, bpp)[:, :, :3]
    return width, height, int((rgb != 255).any(axis=2).sum())


def drawn_plots(dom: str) -> dict[str, int]:
    """Per plot ``<div>`` of the page: how many marks vega drew into its SVG (0: not drawn)."""
    out = {}
    for match in re.finditer(r'<div id="plot-\d+" class="plot[^"]*" data-title="([^"]+)"[^>]*>(.*?)</svg>', dom, re.S):
        title, body = match.group(1), match.group(2)
        out[title] = len(re.findall(r'<path[^>]*\bd="M', body)) if 'class="marks"' in body else 0
    return out


def series(spec: dict, field: str = "field") -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for v in spec["data"]["values"]:
        out.setdefault(v.get(field, ""), []).append(v)
    return out


# ---- dvc plots show / diff and make plots on a real run ----


@pytest.mark.slow
def test_make_plots_renders_every_plot_with_its_series_and_diffs_two_nights(
    workspace_factory, corpus, tmp_path: Path
) -> None:
    _, entries = corpus
    missing = dict(entries[0], owner="org9", name="missing", url=(tmp_path / "missing").as_uri())
    ws = workspace_factory(str(write_feed(tmp_path / "feed.json", [*entries[:8], missing])))
    # index assignment: every shard gets repos (a hash of these temporary URLs may leave one empty, wall time 0)
    ws.set_params(
        shards={"batch_size": 4, "offsets": [0, 1, 2, 3], "assign": "index"}, ingest={"max_summary_bytes": 4096}
    )
    ws.dvc("repro")
    ws.commit("night 1")

    out = make(ws, "plots").stdout
    html = ws.path / "dvc_plots" / "index.html"
    assert f"plots: {ws.path}/dvc_plots/index.html" in out and html.exists()
    specs = html_specs(html)
    assert set(specs) == TITLES
    page = html.read_text()
    assert "cdn.jsdelivr.net" not in page and not re.search(r"<script[^>]+src=", page)  # nothing to fetch
    pngs = sorted(p.name for p in html.parent.glob("*.png"))
    sizes = [struct.unpack(">II", (html.parent / n).read_bytes()[16:24]) for n in pngs]  # IHDR: width, height
    assert len(pngs) == 6 and all(w > 300 and h > 100 for w, h in sizes), (pngs, sizes)
    # the page in a real browser with no network: every plot drawn, the reason label whole
    dom = in_browser(html, tmp_path, "--dump-dom").stdout.decode()
    drawn = drawn_plots(dom)
    assert set(drawn) == TITLES and all(n > 0 for n in drawn.values()), drawn
    reason = specs["Failed repos by reason"]["data"]["values"][0]["reason"]
    assert f">{reason}</text>" in dom, reason  # not cut at vega's default label limit
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / "plots.png"
    in_browser(html, tmp_path, f"--screenshot={shot}", "--window-size=1000,1400")
    width, height, inked = inked_pixels(shot.read_bytes())
    assert width == 1000 and inked > width * height // 100, (width, height, inked)  # ink, not a blank page
    print(f"plots page screenshot: {shot}")
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
    tokens = specs["Tokens per digest by percentile"]["data"]["values"]
    assert len(tokens) == 101 and 0 < float(tokens[-1]["tokens_k"]) <= 4.096  # a 4 KB digest: at most 4,096 tokens
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
        (
            f"  offsets: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]  {comment}",
            f"  offsets: [0, 1, 2, 3]  {comment}",
        ),  # the comment keeps its two spaces after the list
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
    assert missing_n.returncode == 2 and "xgov-digests shards: error: set N=" in missing_n.stderr


# ---- plain dvc plots show / diff: the committed template inlines vega ----


def dvc_page_drawn(dom: str) -> dict[str, int]:
    """Per plot of DVC's page (``<div id="<title, non-word characters as _>">``, whose script vega-embed replaces
    with the chart): the marks vega drew into its SVG, by title (0: not drawn)."""
    ids = {re.sub(r"\W", "_", title): title for title in TITLES}
    out = {}
    for match in re.finditer(r'<div id="([^"]+)"[^>]*>(.*?)(?=<div id="|</body>)', dom, re.S):
        if match.group(1) in ids:
            body = match.group(2)
            out[ids[match.group(1)]] = len(re.findall(r'<path[^>]*\bd="M', body)) if 'class="marks"' in body else 0
    return out


@pytest.mark.slow
def test_plain_dvc_plots_diff_renders_every_plot_offline(workspace_factory, corpus, tmp_path: Path) -> None:
    _, entries = corpus
    missing = dict(entries[0], owner="org9", name="missing", url=(tmp_path / "missing").as_uri())
    ws = workspace_factory(str(write_feed(tmp_path / "feed.json", [*entries[:4], missing])))
    ws.set_params(shards={"batch_size": 2, "offsets": [0, 1], "assign": "index"})
    ws.dvc("repro")
    ws.commit("night 1")

    ws.dvc("plots", "diff", "HEAD", "-o", "diff")
    page = ws.path / "diff" / "index.html"
    text = page.read_text()
    assert "cdn.jsdelivr.net" not in text and not re.search(r"<script[^>]+src=", text)
    drawn = dvc_page_drawn(in_browser(page, tmp_path, "--dump-dom").stdout.decode())
    assert set(drawn) == TITLES and all(n > 0 for n in drawn.values()), drawn

    # the comparison can fail: DVC's own page (no template) draws nothing with no network
    ws.dvc("config", "--unset", "plots.html_template")
    ws.dvc("plots", "show", "-o", "plain")
    plain = ws.path / "plain" / "index.html"
    assert "cdn.jsdelivr.net" in plain.read_text()
    drawn = dvc_page_drawn(in_browser(plain, tmp_path, "--dump-dom").stdout.decode())
    assert set(drawn) == TITLES and not any(drawn.values()), drawn
