"""Settings are defined once: every default of a ``params.yaml`` key lives in ``xgov_digests/core/params.py`` (its
typed frozen sections), and ``params.yaml`` holds only keys those sections know, each of the type they declare.

How the two relate: ``params.yaml`` holds the run's values (people edit it; DVC tracks the keys its stages list),
and it spells out every key, so what a run uses can be read in one file. The sections' defaults are what a key left
out of a params file means (a params file from before the key existed, the tests' minimal ones); they are not
required to equal ``params.yaml``'s values, which people change (``shards.batch_size``).
"""

from __future__ import annotations

import ast
import dataclasses
import typing
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from xgov_digests.core import params as params_module
from xgov_digests.core.params import Params, load_params

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("xgov_digests", "stages")
HOME = "xgov_digests/core/params.py"
# Names that are also a params key but mean something else there. Keyed by file name (not folder) and name, each
# with why it is not a params default.
OTHER_MEANING = {
    ("plan.py", "workers"): "publish's hashing threads, not ingest.workers (repos in flight per shard)",
    ("remote_audit.py", "CACHE"): "DVC's cache folder, not ingest.cache (the digest cache)",
    ("remote_audit.py", "cache"): "DVC's cache folder, not ingest.cache (the digest cache)",
    ("dvc_repair.py", "CACHE"): "DVC's cache folder, not ingest.cache (the digest cache)",
    ("remote_audit.py", "limit"): "how many missing objects a report names, not feed.limit",
    ("r2.py", "bucket"): "the R2 bucket 'xgov-digests r2' configures for DVC's remote, not publish.bucket",
    ("r2.py", "prefix"): "the DVC remote's folder in that bucket, not publish.prefix (the published digests')",
    # parse_feed checks URLs only when it is given allowed_hosts; True keeps a caller's file:// entries unless it
    # says otherwise (the fetch stage always passes ingest.allow_file_urls)
    ("snapshot.py", "allow_file_urls"): "parse_feed's URL check is off unless a caller passes allowed_hosts",
}


def params_keys() -> dict[str, dict[str, dataclasses.Field]]:
    """section -> key -> its field, for every section of :class:`Params` (the keys of params.yaml)."""
    sections = typing.get_type_hints(Params, vars(params_module))
    return {name: {f.name: f for f in dataclasses.fields(cls)} for name, cls in sections.items()}


def defaults_outside(source: str, keys: set[str], filename: str = "<source>") -> list[str]:
    """Where ``source`` gives a value to something named like a params key: a parameter's default, a keyword
    ``default=`` of an argparse option whose dest is a key, or a module or class constant (``MAX_FILES``,
    ``DEFAULT_MAX_FILES``, ``_max_files``). A value that is None (absent) or that reads a name imported from
    ``xgov_digests.core.params`` (``FeedParams.timeout``), directly or through a constant of the same module so
    derived, is not a second definition."""
    tree = ast.parse(source)
    imported = {
        a.asname or a.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "xgov_digests.core.params"
        for a in node.names
    }
    derived = set(imported)

    def reads_params(value: ast.expr) -> bool:
        return any(isinstance(n, ast.Name) and n.id in derived for n in ast.walk(value))

    def plain(value: ast.expr | None) -> bool:  # a value of its own: a second definition
        return (
            value is not None
            and not (isinstance(value, ast.Constant) and value.value is None)
            and not (reads_params(value))
        )

    def key(name: str) -> str | None:
        low = name.lower().lstrip("_").removeprefix("default_")
        return low if low in keys else None

    found = []
    for node in tree.body:  # module constants first: a constant derived from the params may be a default below
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets:
            if isinstance(target, ast.Name) and getattr(node, "value", None) is not None:
                if not plain(node.value):
                    derived.add(target.id)
                elif key(target.id):
                    found.append(f"{filename}:{node.lineno}: constant {target.id} = {ast.unparse(node.value)}")
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            a = node.args
            positional = a.posonlyargs + a.args
            pairs = [
                *zip(positional[len(positional) - len(a.defaults) :], a.defaults, strict=True),
                *zip(a.kwonlyargs, a.kw_defaults, strict=True),
            ]
            for arg, value in pairs:
                if arg.arg in keys and plain(value):
                    found.append(f"{filename}:{node.lineno}: parameter {arg.arg} = {ast.unparse(value)}")
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.AnnAssign | ast.Assign):
                    targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                    for target in targets:
                        if isinstance(target, ast.Name) and key(target.id) and plain(item.value):
                            found.append(
                                f"{filename}:{item.lineno}: field {node.name}.{target.id} = {ast.unparse(item.value)}"
                            )
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            kw = {k.arg: k.value for k in node.keywords}
            flags = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            dest = (
                kw["dest"].value
                if isinstance(kw.get("dest"), ast.Constant)
                else (max(flags, key=len).lstrip("-").replace("-", "_") if flags else "")
            )
            if dest in keys and plain(kw.get("default")):
                found.append(f"{filename}:{node.lineno}: default of option --{dest} = {ast.unparse(kw['default'])}")
    return found


def _name(hit: str) -> str:
    """The name a hit gives a value to ("x.py:3: parameter retries = 3" -> "retries")."""
    return hit.split(": ", 1)[1].split(" = ")[0].split()[-1].split(".")[-1].removeprefix("--")


def scan() -> list[str]:
    keys = {k for section in params_keys().values() for k in section}
    hits = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel == HOME:
                continue
            for hit in defaults_outside(path.read_text(encoding="utf-8"), keys, rel):
                if (path.name, _name(hit)) not in OTHER_MEANING:
                    hits.append(hit)
    return hits


def test_every_params_default_is_defined_in_core_params() -> None:
    hits = scan()
    assert not hits, (
        "a default of a params.yaml key is defined outside xgov_digests/core/params.py: take it from the section "
        "(e.g. FeedParams.timeout) or pass the section's settings whole (CloneSettings):\n  " + "\n  ".join(hits)
    )


def test_the_default_scan_can_fail() -> None:
    """Each form the scan looks for, planted in a source string, is found; the derived forms are not."""
    keys = {"retries", "max_file_size", "limit", "timeout"}
    planted = """
import argparse
from xgov_digests.core.params import FeedParams
MAX_FILE_SIZE = 524288
DEFAULT_RETRIES = 2
DERIVED_TIMEOUT = FeedParams.timeout
def clone(url, *, retries=3, timeout=None): ...
def fetch(url, timeout=DERIVED_TIMEOUT, limit=FeedParams.limit): ...
class Options:
    limit: int = 5
argparse.ArgumentParser().add_argument("--limit", type=int, default=7)
"""
    found = defaults_outside(planted, keys)
    assert [_name(h) for h in found] == ["MAX_FILE_SIZE", "DEFAULT_RETRIES", "retries", "limit", "limit"], found


def _matches(value: object, hint: object) -> bool:
    """Is ``value`` (as YAML loads it) of the declared type ``hint``? An int is a float; a bool is not an int."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        (item, _) = typing.get_args(hint)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)  # type: ignore[arg-type]


def type_problems(raw: dict[str, dict[str, object]]) -> list[str]:
    """Each key of ``raw`` (params.yaml as loaded) that no section knows, or whose value is not its declared type."""
    problems = []
    sections = typing.get_type_hints(Params, vars(params_module))
    for section, values in raw.items():
        if section not in sections:
            problems.append(f"unknown section {section}")
            continue
        hints = typing.get_type_hints(sections[section], vars(params_module))
        for key, value in (values or {}).items():
            if key not in hints:
                problems.append(f"unknown key {section}.{key}")
            elif not _matches(value, hints[key]):
                problems.append(f"{section}.{key} = {value!r} is not {hints[key]}")
    return problems


def test_params_yaml_is_checked_against_the_sections() -> None:
    raw = YAML(typ="safe", pure=True).load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    assert type_problems(raw) == []
    missing = [f"{s}.{k}" for s, keys in params_keys().items() for k in keys if k not in (raw.get(s) or {})]
    assert missing == [], "params.yaml spells out every key (DVC and people read the run's values there)"
    load_params(ROOT / "params.yaml")  # and the values pass the sections' own checks


@pytest.mark.parametrize(
    ("section", "key", "value", "problem"),
    [
        ("ingest", "workers", "8", "is not"),
        ("ingest", "allowed_hosts", "github.com", "is not"),
        ("feed", "timeout", True, "is not"),
        ("ingest", "worker", 8, "unknown key"),
        ("shard", "x", 1, "unknown"),
    ],
)
def test_the_params_check_can_fail(section: str, key: str, value: object, problem: str) -> None:
    raw = YAML(typ="safe", pure=True).load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    raw.setdefault(section, {})[key] = value
    found = type_problems(raw)
    assert len(found) == 1 and problem in found[0], found
