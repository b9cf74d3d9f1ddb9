"""One exception base: every error the user can act on is an ``XgovError`` carrying its exit code, caught once by
type where a command or a stage turns it into one line; the digest's errors import without the digest code."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from xgov_digests.core.diskfull import DiskFull
from xgov_digests.core.errors import XgovError
from xgov_digests.core.params import ParamsError
from xgov_digests.core.s3 import S3ConfigError
from xgov_digests.digest.errors import DigestBug, DigestStopped, DigestTimeout, EnvironmentMismatch
from xgov_digests.digest.tokens import TokenError
from xgov_digests.feed.download import FeedError
from xgov_digests.feed.manifest import ManifestError
from xgov_digests.feed.selection import SelectionError
from xgov_digests.operations.check_remote import AuditError
from xgov_digests.operations.dvc_repair import RepairError
from xgov_digests.operations.scaleout import ScaleoutError
from xgov_digests.publish.bucket import LeaseError, RemoteError
from xgov_digests.publish.plan import PublishError
from xgov_digests.publish.run import PruneRefused, RunNotFinished
from xgov_digests.results.dataset import DatasetError
from xgov_digests.results.merge import AggregateError
from xgov_digests.results.outputs import DigestMismatch
from xgov_digests.results.plots import PlotsError
from xgov_digests.shard.cache import CacheSecretError, CacheUnavailable

ROOT = Path(__file__).resolve().parents[2]
# error -> (the base code may still catch it by, its exit code)
USER_ERRORS = {
    ParamsError: (ValueError, 2),
    SelectionError: (ValueError, 2),
    ManifestError: (ValueError, 2),
    FeedError: (RuntimeError, 2),
    S3ConfigError: (RuntimeError, 2),
    DiskFull: (RuntimeError, 1),
    EnvironmentMismatch: (RuntimeError, 2),
    TokenError: (RuntimeError, 2),
    CacheUnavailable: (RuntimeError, 2),
    CacheSecretError: (RuntimeError, 2),
    AggregateError: (RuntimeError, 2),
    DigestMismatch: (RuntimeError, 2),
    DatasetError: (RuntimeError, 2),
    PlotsError: (Exception, 2),
    PublishError: (RuntimeError, 2),
    RunNotFinished: (RuntimeError, 2),
    PruneRefused: (RuntimeError, 2),
    RemoteError: (RuntimeError, 2),
    LeaseError: (RuntimeError, 2),
    AuditError: (RuntimeError, 2),
    ScaleoutError: (RuntimeError, 2),
    RepairError: (RuntimeError, 2),
}


@pytest.mark.parametrize("error", list(USER_ERRORS), ids=lambda e: e.__name__)
def test_user_errors_share_the_one_base_and_keep_theirs(error: type[Exception]) -> None:
    base, code = USER_ERRORS[error]
    assert issubclass(error, XgovError) and issubclass(error, base)
    assert error.exit_code == code


def test_a_digests_own_failures_are_rows_not_user_errors() -> None:
    """A timeout, a dead digest process or a bug fails one repo's row (shard/run.py), never the command's line."""
    for error in (DigestTimeout, DigestStopped, DigestBug):
        assert issubclass(error, RuntimeError) and not issubclass(error, XgovError)


LOADED = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
heavy = ("gitingest", "pathspec", "multiprocessing.connection", "xgov_digests.digest.budget", "tiktoken")
print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
"""


def heavy_modules(module: str) -> list[str]:
    """The heavy modules a fresh interpreter holds after importing ``module``."""
    done = subprocess.run([sys.executable, "-c", LOADED, module], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    "module", ["xgov_digests.digest.errors", "xgov_digests.digest.version", "xgov_digests.shard.run"]
)
def test_digest_errors_import_without_the_digest_code(module: str) -> None:
    """The shard catches the digest's errors by type from the start, and loads the digest code on its first cache
    miss only."""
    assert heavy_modules(module) == []


def test_the_import_check_can_fail() -> None:
    assert {"gitingest", "pathspec"} <= set(heavy_modules("xgov_digests.digest.walk"))
    assert {"multiprocessing.connection", "xgov_digests.digest.budget"} <= set(
        heavy_modules("xgov_digests.digest.budget")
    )


# The exceptions a stage or the command may catch besides XgovError and Python's own, each with why.
ALSO_CAUGHT = {
    "SelectionError": "stages/shard.py: a bad --batch-size/--offset is a usage error, reported by argparse",
    "S3ConfigError": "stages/shard.py: raised again with the setting it is about (ingest.cache)",
}


def caught_library_errors(source: str) -> list[str]:
    """The library's exception classes (imported from ``xgov_digests``) named in ``except`` clauses, beside
    ``XgovError`` and :data:`ALSO_CAUGHT`."""
    tree = ast.parse(source)
    library = {
        a.asname or a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("xgov_digests")
        for a in n.names
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            names = [n.id for n in ast.walk(node.type) if isinstance(n, ast.Name)]
            found += [f"{node.lineno}: {n}" for n in names if n in library and n not in ("XgovError", *ALSO_CAUGHT)]
    return found


@pytest.mark.parametrize(
    "path", [*sorted((ROOT / "stages").glob("*.py")), ROOT / "xgov_digests/commands/main.py"], ids=lambda p: p.name
)
def test_stages_and_the_command_catch_the_one_base(path: Path) -> None:
    assert caught_library_errors(path.read_text(encoding="utf-8")) == []


def test_the_one_base_check_can_fail() -> None:
    planted = """
from xgov_digests.core.params import ParamsError
from xgov_digests.feed.manifest import ManifestError
try:
    pass
except (ParamsError, ManifestError, OSError):
    pass
"""
    assert caught_library_errors(planted) == ["6: ParamsError", "6: ManifestError"]
