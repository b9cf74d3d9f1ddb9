"""What the digest processes' fork server imports before it forks a digest process: the walk and the digest pool,
with only the parts of gitingest a digest runs.

A digest runs four of gitingest's modules: ``utils.file_utils`` (decoding), ``utils.notebook`` (notebooks),
``schemas.filesystem`` (the separator) and ``config`` (the walk's limits). Importing any of them the usual way
first runs the ``gitingest`` package's ``__init__``, which imports its entry point: the URL clone's web clients
(httpx, requests), pydantic's schemas and the output formatter, none of which a digest uses, at about 0.2 s of CPU
in each shard's fork server. Here the ``gitingest`` and ``gitingest.schemas`` packages are registered without
running their ``__init__`` (their ``__path__`` is all a submodule import needs), so the imports that follow load
those leaf modules from the same files, under the same names, and nothing else: a digest made here is the digest
made in a process that imported gitingest whole (``tests/unit/digest/test_budget.py`` compares them).

Only the fork server imports this module (``DigestPool``'s preload): in any other process a later
``from gitingest import ingest`` would find the package without its entry point. Where gitingest is already
imported, nothing is registered and its modules are used as they are.
"""

from __future__ import annotations

import importlib.util
import sys

_PACKAGES = ("gitingest", "gitingest.schemas")  # parents first: a subpackage's spec is found on its parent's path


def _register_without_init(name: str) -> None:
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        raise ModuleNotFoundError(f"{name} is not an installed package: make install")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)


if "gitingest" not in sys.modules:
    for _name in _PACKAGES:
        _register_without_init(_name)

import xgov_digests.digest.budget  # noqa: E402,F401 - the modules every digest process starts with
import xgov_digests.digest.walk  # noqa: E402

xgov_digests.digest.walk.gitingest_limits()  # the limits' module too: imported here once, not in each digest process
