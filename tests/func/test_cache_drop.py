"""``xgov-digests cache-drop``: a named repo's digest-cache entry is deleted (and only it), so the next run clones
it again; ``--all`` empties the cache; a name the snapshot does not hold, or a bad form, deletes nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import Reproduced, two_shards

pytestmark = pytest.mark.slow
COMMAND = str(Path(sys.executable).with_name("xgov-digests"))


def entries(ws) -> list[Path]:
    return sorted((ws.path / ".cache" / "digests").rglob("*.digest"))


def test_cache_drop_deletes_the_named_entries_and_nothing_else(reproduced: Reproduced, tmp_path: Path) -> None:
    ws = reproduced.workspace("two-shards", two_shards, tmp_path)
    before = entries(ws)
    assert len(before) == 6  # one entry per digested repo: the comparisons below can fail

    for bad, says in (
        (["org0/nope"], "not in the snapshot's manifests: org0/nope"),
        (["org0"], "not OWNER/NAME"),
        ([], "name the repos"),
        (["--all", "org0/project-000"], "name the repos"),
    ):
        result = ws.run(COMMAND, "cache-drop", *bad, check=False)
        assert result.returncode == 2 and says in result.stderr and "nothing was deleted" in result.stderr, bad
        assert entries(ws) == before

    dropped = ws.run(COMMAND, "cache-drop", "ORG0/Project-000")  # any case, as the manifests hold it
    assert "deleted 1 entry" in dropped.stdout
    assert len(entries(ws)) == 5
    again = ws.run(COMMAND, "cache-drop", "org0/project-000")
    assert "deleted 0 entries" in again.stdout

    ws.run(COMMAND, "cache-drop", "--all")
    assert entries(ws) == []
