"""``xgov-digests plots [--rev REV] [--out DIR]``: DVC's plots as an HTML page that renders offline (vega inlined),
``dvc_plots/index.html``, and a PNG per plot.

xgov-digests plots                  # dvc plots show: dvc_plots/index.html and dvc_plots/<plot>.png
xgov-digests plots --rev HEAD~1     # dvc plots diff HEAD~1: that revision against the workspace
"""

from __future__ import annotations

import argparse
from pathlib import Path

from xgov_digests.core.errors import XgovError
from xgov_digests.operations import dvc
from xgov_digests.results.plots import PlotsError, plots_from_dvc_json, write


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "plots",
        help="the DVC plots as dvc_plots/index.html and PNGs (--rev: a diff)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rev", action="append", default=[], help="compare with this revision (dvc plots diff)")
    parser.add_argument("--out", type=Path, default=Path("dvc_plots"), help="folder to write (default dvc_plots)")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> None:
    shown = dvc.output(["plots", "diff", *args.rev, "--json"] if args.rev else ["plots", "show", "--json"])
    try:
        written = write(plots_from_dvc_json(shown), args.out)
    except PlotsError as exc:
        raise XgovError(str(exc)) from None
    index, pngs = written[0], written[1:]
    print(f"plots: {index.resolve()} (renders offline: vega is inlined)")
    print(f"plots: {len(pngs)} PNG files in {args.out.resolve()}/: " + ", ".join(p.name for p in pngs))
