"""Fixtures the unit tests of several wings share (the root conftest's are available too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.served import Served
from tests.fixtures.tricky import tricky_tree


@pytest.fixture
def served(tmp_path: Path):
    s = Served(tmp_path / "srv")
    yield s
    s.stop()


@pytest.fixture
def tricky(tmp_path: Path) -> Path:
    """Everything gitingest treats specially, in one tree (the work tree, so untracked files count too)."""
    return tricky_tree(tmp_path / "tricky")
