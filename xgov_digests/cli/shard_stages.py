"""The stages ``make repro`` hands to ``make -j N``: the shards that params.yaml lists, and ``aggregate``.

python -m xgov_digests.cli.shard_stages
    every shard stage: "shard@0 shard@1 … shard@9"
python -m xgov_digests.cli.shard_stages --changed
    only what DVC would run now (after fetch): "shard@3 aggregate", or nothing

``--changed`` asks DVC's status, in this process, which shard stages changed; ``aggregate`` follows when a shard
runs or it changed itself. A night where no shard's manifest changed then starts no ``dvc`` process per shard.
"""

from __future__ import annotations

import argparse
import sys

from xgov_digests.core.params import ParamsError, load_params


def changed_stages() -> set[str]:
    """Names of the stages ``dvc status`` lists as changed."""
    from dvc.repo import Repo

    with Repo() as repo:
        return set(repo.status())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xgov_digests.cli.shard_stages", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--changed", action="store_true", help="only the stages DVC would run now")
    args = parser.parse_args(argv)
    try:
        offsets = load_params().shards.offsets
    except ParamsError as exc:
        print(f"shard_stages: error: {exc}", file=sys.stderr)
        return 2
    if not offsets:
        print("shard_stages: error: shards.offsets in params.yaml is empty", file=sys.stderr)
        return 2
    stages = [f"shard@{k}" for k in offsets]
    if args.changed:
        from dvc.exceptions import DvcException

        try:
            changed = changed_stages()
        except DvcException as exc:  # a busy lock, a broken dvc.lock: one line, the make target stops
            print(f"shard_stages: error: dvc status failed: {exc}", file=sys.stderr)
            return 2
        stages = [s for s in stages if s in changed]
        if stages or "aggregate" in changed:
            stages.append("aggregate")
    print(" ".join(stages))
    return 0


if __name__ == "__main__":
    sys.exit(main())
