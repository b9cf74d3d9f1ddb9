"""``make plots``: DVC's plots as an HTML page that renders offline, and a PNG per plot.

python -m xgov_digests.cli.plots                  # dvc plots show: dvc_plots/index.html and dvc_plots/<plot>.png
python -m xgov_digests.cli.plots --rev HEAD~1     # dvc plots diff HEAD~1: that revision against the workspace
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from xgov_digests.results.plots_page import PlotsError, plots_from_dvc_json, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xgov_digests.cli.plots", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--rev", action="append", default=[], help="compare with this revision (dvc plots diff)")
    parser.add_argument("--out", type=Path, default=Path("dvc_plots"), help="folder to write (default dvc_plots)")
    parser.add_argument("--dvc", default="dvc", help="the dvc command (default: dvc on PATH)")
    args = parser.parse_args(argv)
    cmd = [args.dvc, "plots", "diff", *args.rev, "--json"] if args.rev else [args.dvc, "plots", "show", "--json"]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as exc:
        print(f"plots: error: cannot run {args.dvc}: {exc}", file=sys.stderr)
        return 2
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        print(f"plots: error: '{' '.join(cmd)}' exited {result.returncode} (see above)", file=sys.stderr)
        return result.returncode
    try:
        written = write(plots_from_dvc_json(result.stdout), args.out)
    except PlotsError as exc:
        print(f"plots: error: {exc}", file=sys.stderr)
        return 2
    index, pngs = written[0], written[1:]
    print(f"plots: {index.resolve()} (renders offline: vega is inlined)")
    print(f"plots: {len(pngs)} PNG files in {args.out.resolve()}/: " + ", ".join(p.name for p in pngs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
