"""Set keys of ``params.yaml`` in place, keeping its comments and layout.

python -m xgov_digests.cli.set_params feed.limit=10 ingest.cache=s3://bucket/digest-cache

Each value is read as YAML (``10`` is a number, ``[0, 1]`` a list, anything else a string).
"""

from __future__ import annotations

import argparse
import sys
from io import StringIO

from ruamel.yaml import YAML

from xgov_digests.core.params import PARAMS_FILE, update_params


def parse_assignment(text: str) -> tuple[str, str, object]:
    """``section.key=value`` -> (section, key, value parsed as YAML)."""
    name, sep, raw = text.partition("=")
    section, dot, key = name.partition(".")
    if not sep or not dot or not section or not key or "." in key:
        raise ValueError(f"expected section.key=value, got {text!r}")
    return section, key, YAML(typ="safe").load(StringIO(raw)) if raw else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xgov_digests.cli.set_params", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assignments", nargs="+", metavar="section.key=value")
    args = parser.parse_args(argv)
    overrides: dict[str, dict[str, object]] = {}
    for text in args.assignments:
        try:
            section, key, value = parse_assignment(text)
        except ValueError as exc:
            parser.error(str(exc))
        overrides.setdefault(section, {})[key] = value
    try:
        update_params(PARAMS_FILE, overrides)
    except KeyError as exc:
        print(f"set_params: error: {PARAMS_FILE} has no section {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
