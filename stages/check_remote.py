"""Before ``dvc push``/``pull``: check that the DVC remote's bucket answers with the configured credentials.

python -m stages.check_remote [--write] [REMOTE]      # the default remote when REMOTE is not given

--write (before a push) also writes and deletes a probe object under the remote's prefix, so a read-only token is
caught before DVC starts. Every request is bounded by storage.timeout (params.yaml).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xgov_digests.params import ParamsError, load_params
from xgov_digests.s3 import S3ConfigError, check_remote


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.check_remote", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("remote", nargs="?", help="DVC remote name (default: the default remote)")
    parser.add_argument("--write", action="store_true", help="also check that the credentials can write")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    try:
        timeout = load_params(args.params).storage.timeout
        print(check_remote(args.remote, timeout=timeout, write=args.write))
    except (S3ConfigError, ParamsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
