"""The DVC plots as one HTML page that renders offline, and one PNG per plot.

DVC's own HTML loads vega, vega-lite and vega-embed from a CDN, so it is a blank page without network. This page
inlines the same three libraries from vl-convert-python's bundle, and embeds each plot the way DVC's page does (a
``<div>`` holding ``var spec = {...}; vegaEmbed(...)``), from the filled-in specs of ``dvc plots show --json``.
vl-convert renders the same specs to PNG without a browser.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xgov_digests.core.errors import XgovError

# vl-convert's Vega-Lite version for DVC's templates, which are vega-lite v5 specs
VL_VERSION = "5.21"


class PlotsError(XgovError):
    """The plots cannot be rendered: the message says why and what to do."""


@dataclass(frozen=True)
class Plot:
    title: str
    spec: dict[str, Any]

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-") or "plot"


def plots_from_dvc_json(text: str) -> list[Plot]:
    """The vega plots of ``dvc plots show --json`` (or ``diff``) output, in dvc.yaml's order; a plot whose data
    file has no rows (no failed repos) has an empty ``spec``."""
    try:
        data = json.loads(text)["data"]
    except (ValueError, KeyError, TypeError) as exc:
        raise PlotsError(f"dvc plots gave no JSON plot data ({exc}): run 'dvc plots show --json' to see why") from None
    plots = []
    for title, renders in data.items():
        vega = [r["content"] for r in renders if r.get("type") == "vega" and isinstance(r.get("content"), dict)]
        plots += [Plot(title, spec) for spec in vega] or [Plot(title, {})]
    if not any(plot.spec for plot in plots):
        raise PlotsError("no plot has data yet: run the pipeline first (make repro), then make plots")
    return plots


def vl_convert() -> Any:
    try:
        import vl_convert
    except ImportError:
        raise PlotsError(
            "vl-convert-python is not installed (it ships the vega scripts the page inlines): "
            "pip install -e '.[plots]' (make plots installs it)"
        ) from None
    return vl_convert


def script_text(text: str) -> str:
    return text.replace("</script", "<\\/script")  # a spec's strings can never close the script element


def page(plots: list[Plot]) -> str:
    """One self-contained HTML page: the libraries inline, then one embedded plot per ``<div>``."""
    bundle = vl_convert().javascript_bundle(vl_version=VL_VERSION)  # sets window.vega, vegaLite, vegaEmbed
    divs = []
    for i, plot in enumerate(plots):
        if not plot.spec:
            divs.append(
                f'<div id="plot-{i}" class="plot empty"><h3>{html.escape(plot.title)}</h3>'
                "<p>no data in this run (for failures: no repo failed)</p></div>"
            )
            continue
        spec = script_text(json.dumps(plot.spec, ensure_ascii=False))
        divs.append(
            f'<div id="plot-{i}" class="plot" data-title="{html.escape(plot.title)}">\n'
            f'<script type="text/javascript">\nvar spec = {spec};\n'
            f"vegaEmbed('#plot-{i}', spec, {{renderer: 'svg', actions: false}})"
            f".catch(function (e) {{ document.getElementById('plot-{i}').textContent = String(e); }});\n"
            "</script>\n</div>"
        )
    return (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n<title>xgov-digests plots</title>\n'
        f'<script type="text/javascript">\n{script_text(bundle)}\n</script>\n'
        "<style>body { font-family: sans-serif; } .plot { margin: 24px; }</style>\n</head>\n<body>\n"
        + "\n".join(divs)
        + "\n</body>\n</html>\n"
    )


def write(plots: list[Plot], out_dir: Path) -> list[Path]:
    """Write ``index.html`` and ``<slug>.png`` per plot into ``out_dir``; returns the paths written."""
    vlc = vl_convert()
    out_dir.mkdir(parents=True, exist_ok=True)
    index = out_dir / "index.html"
    index.write_text(page(plots), encoding="utf-8")
    written = [index]
    for plot in plots:
        png = out_dir / f"{plot.slug}.png"
        png.unlink(missing_ok=True)  # no stale image of a plot that has no data now
        if not plot.spec:
            continue
        png.write_bytes(vlc.vegalite_to_png(plot.spec, vl_version=VL_VERSION, scale=2))
        written.append(png)
    return written
