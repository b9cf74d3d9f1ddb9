"""The scale-out targets' checks and the coordinator's collect (Makefile: worker, collect, fetch-publish).

python -m xgov_digests.cli.scaleout check-offsets K [K ...]
    each K is one of shards.offsets, else exit 2
python -m xgov_digests.cli.scaleout params-changed
    tracked params that differ from the last commit; exit 2 on doubt
python -m xgov_digests.cli.scaleout collect [--allow-local]
    shards from the run-cache, then aggregate; prints what it found
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xgov_digests.core.params import ParamsError, load_params
from xgov_digests.operations.scaleout import ScaleoutError, changed_tracked_params, check_offsets, collect


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xgov_digests.cli.scaleout", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    offsets = sub.add_parser("check-offsets", help="check OFFSET values against shards.offsets")
    offsets.add_argument("values", nargs="*", help="offsets as given to make (use -- before values such as -1)")
    sub.add_parser("params-changed", help="print tracked params.yaml keys that differ from the last commit")
    col = sub.add_parser("collect", help="restore the shards from the run-cache, then run aggregate")
    col.add_argument("--allow-local", action="store_true", help="digest any number of missing shards here")
    args = parser.parse_args(argv)
    try:
        if args.command == "params-changed":
            print(" ".join(changed_tracked_params()))
            return 0
        shards = load_params(args.params).shards.offsets
        if args.command == "check-offsets":
            check_offsets(args.values, shards)
            return 0
        print(collect(list(shards), args.allow_local).report())
    except (ScaleoutError, ParamsError) as exc:
        print(f"{args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
