"""``xgov-digests set-params section.key=value ...``: set keys of ``params.yaml`` in place, keeping its comments and
layout (``make run`` sets ``feed.limit`` this way; CI sets ``ingest.cache``).

    xgov-digests set-params feed.limit=10 ingest.cache=s3://bucket/digest-cache

Each value is read as YAML (``10`` is a number, ``[0, 1]`` a list, anything else a string). Unknown sections and
keys, and values of the wrong type, are refused before the file is written."""

from __future__ import annotations

import argparse
from io import StringIO

from ruamel.yaml import YAML

from xgov_digests.core.errors import XgovError
from xgov_digests.core.params import PARAMS_FILE, update_params


def assignment(text: str) -> tuple[str, str, object]:
    """``section.key=value`` -> (section, key, value parsed as YAML)."""
    name, sep, raw = text.partition("=")
    section, dot, key = name.partition(".")
    if not sep or not dot or not section or not key or "." in key:
        raise argparse.ArgumentTypeError(f"expected section.key=value, got {text!r}")
    return section, key, YAML(typ="safe").load(StringIO(raw)) if raw else ""


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "set-params",
        help="set keys of params.yaml, keeping its comments and layout",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("assignments", nargs="+", type=assignment, metavar="section.key=value")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> None:
    overrides: dict[str, dict[str, object]] = {}
    for section, key, value in args.assignments:
        overrides.setdefault(section, {})[key] = value
    try:
        update_params(PARAMS_FILE, overrides)
    except KeyError as exc:
        raise XgovError(f"{PARAMS_FILE} has no section {exc}") from None
