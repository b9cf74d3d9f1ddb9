"""``xgov-digests repro [-j N] [SHARD ...]``: fetch, the changed shards up to N at once, then aggregate, with the
outputs, dvc.lock entries and run-cache entries of ``dvc repro`` (``operations.repro``)."""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

from xgov_digests.core.errors import XgovError
from xgov_digests.core.params import PARAMS_FILE, load_params
from xgov_digests.operations import repro as operation
from xgov_digests.operations.repro import repro, shard_names

STAGE_HINT = "git add -A -- dvc.lock params.yaml data reports"


def positive(text: str) -> int:
    if not re.fullmatch(r"\d+", text.strip()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def add_repro_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-j",
        "--jobs",
        type=positive,
        default=1,
        metavar="N",
        help="run up to N shard commands at once (default 1: one after another, like dvc repro)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=30.0,
        help="seconds the shards have to stop after Ctrl-C/SIGTERM before they are killed (30)",
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "repro",
        help="fetch, the changed shards (up to N at once), aggregate: like dvc repro",
        description=__doc__ + "\n\n" + (operation.__doc__ or ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_repro_arguments(parser)
    parser.add_argument(
        "shards",
        nargs="*",
        metavar="SHARD",
        help="only these shards (shard@K or K; fetch does not run), then aggregate when it changed",
    )
    parser.set_defaults(func=main)


def named_shards(values: list[str], offsets: tuple[int, ...]) -> list[str]:
    names = [v if v.startswith("shard@") else f"shard@{v}" for v in values]
    valid = shard_names(offsets)
    bad = [n for n in names if n not in valid]
    if bad:
        raise XgovError(f"{', '.join(bad)} not among params.yaml's shards ({', '.join(valid)}): nothing was run")
    return names


def run_repro(args: argparse.Namespace, shards: list[str] | None = None) -> None:
    offsets = load_params(PARAMS_FILE).shards.offsets
    if not offsets:
        raise XgovError("shards.offsets in params.yaml is empty: set the shards (xgov-digests shards N)")
    only = named_shards(shards or [], offsets)
    result = repro(Path("."), offsets, jobs=args.jobs, only=only, grace=args.grace)
    if not (result.ran or result.restored or result.aggregated):
        print("no shard and no aggregate changed: nothing more to run", flush=True)


def main(args: argparse.Namespace) -> int:
    run_repro(args, args.shards)
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--", "dvc.lock", "params.yaml", "data", "reports"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if changed:
        print(
            f"repro: to track the changes with git: {STAGE_HINT}; then dvc push (make run stages and pushes by itself)"
        )
    return 0
