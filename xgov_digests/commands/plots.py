"""``xgov-digests plots [--rev REV]``: the DVC plots as ``dvc_plots/index.html`` (renders offline) and a PNG each."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xgov_digests.cli import plots

DVC = str(Path(sys.executable).with_name("dvc"))  # this environment's dvc, on PATH or not


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("plots", help="the DVC plots as dvc_plots/index.html and PNGs (--rev: a diff)",
                            description=__doc__, add_help=False)  # fmt: skip
    parser.set_defaults(func=main, passthrough=True)  # its own options


def main(args: argparse.Namespace) -> int:
    given = args.extra if any(a.startswith("--dvc") for a in args.extra) else ["--dvc", DVC, *args.extra]
    return plots.main(given)
