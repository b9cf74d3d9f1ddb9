"""Print the shard stages that ``params.yaml`` lists (``shard@0 shard@1 …``): the targets of ``make repro``.

python -m stages.shard_stages      # e.g. "shard@0 shard@1 shard@2 shard@3"
"""

from __future__ import annotations

import sys

from xgov_digests.params import ParamsError, load_params


def main() -> int:
    try:
        offsets = load_params().shards.offsets
    except ParamsError as exc:
        print(f"shard_stages: error: {exc}", file=sys.stderr)
        return 2
    if not offsets:
        print("shard_stages: error: shards.offsets in params.yaml is empty", file=sys.stderr)
        return 2
    print(" ".join(f"shard@{k}" for k in offsets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
