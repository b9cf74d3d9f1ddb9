"""``xgov_digests/digest/rules.py``: the shard plans clones and receives digests without importing gitingest, and the
default patterns it reads from gitingest's module file are gitingest's own set, in gitingest's order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.workspace import ROOT

HEAVY = ("gitingest", "loguru", "httpx", "pydantic")

# A shard's work in a fresh interpreter: the clone's plan (ignore_spec) and a digest made by a child of the pool.
SHARD_SIDE = """
import json, sys
from pathlib import Path
import stages.shard, xgov_digests.shard.run, xgov_digests.clone.strategy
from xgov_digests.core.params import IngestParams
from xgov_digests.digest.budget import DigestPool
from xgov_digests.digest.format import Header
from xgov_digests.digest.rules import ignore_spec
checkout = Path(sys.argv[1])
spec = ignore_spec(checkout)
with DigestPool(1, 60) as pool:
    digest = pool.digest(checkout, Header("o", "r", "https://x/o/r", "c0ffee", None), IngestParams().digest_settings())
heavy = sorted(m for m in sys.modules if m.split(".")[0] in %r)
print(json.dumps({"heavy": heavy, "ignored": spec.excluded("app.log", "app.log", 0), "digest": digest.data.decode()}))
"""

# gitingest's default patterns, read by rules.py before and after gitingest itself is imported.
ORDER = """
import json
from xgov_digests.digest.rules import default_patterns
standalone = list(default_patterns())
import gitingest.utils.ignore_patterns as gi
print(json.dumps({"standalone": standalone, "gitingest": list(gi.DEFAULT_IGNORE_PATTERNS),
                  "same_object": default_patterns() is gi.DEFAULT_IGNORE_PATTERNS,
                  "reordered": list(set(reversed(list(gi.DEFAULT_IGNORE_PATTERNS))))}))
"""


def run_python(code: str, *args: str, seed: str = "0") -> dict:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True, cwd=ROOT, env=env
    )
    return json.loads(done.stdout)


def test_the_shard_never_imports_gitingest(tmp_path: Path) -> None:
    """Planning a clone and receiving a digest leave gitingest (and its web client, pydantic, loguru's thread) out
    of the shard's process: only the digest children, forked from a server that imported the walk, hold them."""
    (tmp_path / ".gitignore").write_text("*.log\n")
    (tmp_path / "README.md").write_text("hello from the checkout\n")
    (tmp_path / "app.log").write_text("left out\n")
    got = run_python(SHARD_SIDE % (HEAVY,), str(tmp_path))
    assert got["heavy"] == []
    assert got["ignored"] is True  # the checkout's own .gitignore applies
    assert "hello from the checkout" in got["digest"] and "left out" not in got["digest"]


def test_the_import_check_sees_gitingest() -> None:
    """The check above can fail: the walk, which the digest children run, does import gitingest."""
    got = run_python("import json, sys; import xgov_digests.digest.walk; print(json.dumps(sorted(sys.modules)))")
    assert {"gitingest", "loguru", "pydantic"} <= {m.split(".")[0] for m in got}


@pytest.mark.parametrize("seed", ["0", "12345"])
def test_the_default_patterns_are_gitingests_in_its_order(seed: str) -> None:
    """The order decides which of two conflicting patterns wins: the set read from gitingest's module file iterates
    as gitingest's own does, and once gitingest is imported its own set is used."""
    got = run_python(ORDER, seed=seed)
    assert len(got["gitingest"]) > 100
    assert got["standalone"] == got["gitingest"]
    assert got["same_object"] is True


def test_the_order_check_can_fail() -> None:
    """The same patterns put in in another order iterate differently: comparing lists, not sets, is what tells."""
    got = run_python(ORDER)
    assert sorted(got["reordered"]) == sorted(got["gitingest"]) and got["reordered"] != got["gitingest"]
