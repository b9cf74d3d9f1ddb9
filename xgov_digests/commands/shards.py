"""``xgov-digests shards N``: set ``shards.batch_size`` and ``shards.offsets`` together in ``params.yaml`` (its
comments and layout kept), then print what the next ``dvc repro`` will run."""

from __future__ import annotations

import argparse
import re

from xgov_digests.commands.repro import positive
from xgov_digests.core.errors import XgovError
from xgov_digests.core.files import MANIFEST_DIR
from xgov_digests.core.params import PARAMS_FILE, load_params, update_params
from xgov_digests.dvcfiles.stale_shards import stale_offsets
from xgov_digests.feed.manifest import manifest_path
from xgov_digests.operations import dvc


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "shards", help="set the number of shards (batch size and offsets together)", description=__doc__
    )
    parser.add_argument("n", type=positive, nargs="?", metavar="N", help="the number of shards (>= 1)")
    parser.set_defaults(func=main)


def _ranges(offsets: list[int]) -> str:
    """[0, 1, 2, 5] -> 'shard@0..2, shard@5'."""
    parts, start = [], None
    for i, k in enumerate(offsets):
        start = k if start is None else start
        if i + 1 == len(offsets) or offsets[i + 1] != k + 1:
            parts.append(f"shard@{start}" if start == k else f"shard@{start}..{k}")
            start = None
    return ", ".join(parts)


def summarise_plan(dry_run_output: str) -> str:
    """The stages named by ``dvc repro --dry``, with runs of shards folded: 'fetch, shard@0..19, aggregate'."""
    stages = re.findall(r"^Running stage '([^']+)'", dry_run_output, re.M)
    shards = sorted(int(s.split("@")[1]) for s in stages if s.startswith("shard@"))
    others = [s for s in stages if not s.startswith("shard@")]
    names = (
        [s for s in others if s == "fetch"]
        + ([_ranges(shards)] if shards else [])
        + [s for s in others if s != "fetch"]
    )
    return ", ".join(names) if names else "nothing (up to date)"


def main(args: argparse.Namespace) -> None:
    if args.n is None:
        raise XgovError("set N=<number of shards>, e.g. make shards N=20 (xgov-digests shards 20): nothing was changed")
    n = args.n
    before = load_params(PARAMS_FILE).shards
    offsets = list(range(n))
    update_params(PARAMS_FILE, {"shards": {"batch_size": n, "offsets": offsets}})
    print(f"params.yaml: shards.batch_size {before.batch_size} -> {n}, shards.offsets [0 .. {n - 1}]")
    if gone := stale_offsets(offsets):
        print(f"fetch will remove {_ranges(gone)}: their digests, stats, .gitignore lines and dvc.lock entries")
    if not MANIFEST_DIR.exists():  # no run here yet: DVC cannot plan stages whose inputs fetch has not written
        print(f"next dvc repro runs: fetch, {_ranges(offsets)}, aggregate (no run in this workspace yet)")
        return
    if before.batch_size != n or any(not manifest_path(k).exists() for k in offsets):
        # Every manifest records the batch size, so fetch rewrites them all and every shard runs (from the digest
        # cache: no clones). 'dvc repro --dry' cannot say so: it checks the new shards' manifests before fetch runs.
        print(
            f"next dvc repro runs: fetch, {_ranges(offsets)}, aggregate (every shard: the batch size changed; "
            "repos already digested come from the digest cache, no clone)"
        )
        return
    print(f"next dvc repro runs: {summarise_plan(dvc.output(['repro', '--dry']))}")
