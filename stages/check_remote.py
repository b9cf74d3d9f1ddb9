"""Before ``dvc push``/``pull``: check that the DVC remote's bucket answers with the configured credentials.

python -m stages.check_remote [REMOTE]      # the default remote when REMOTE is not given
"""

from __future__ import annotations

import argparse
import sys

from xgov_digests.s3 import S3ConfigError, check_remote


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.check_remote", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("remote", nargs="?", help="DVC remote name (default: the default remote)")
    args = parser.parse_args(argv)
    try:
        print(check_remote(args.remote))
    except S3ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
