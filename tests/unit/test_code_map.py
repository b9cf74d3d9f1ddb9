"""The code map in docs/development.md cannot go stale: every file it names exists in the wing it names, and every
module of ``stages/`` and ``xgov_digests/`` is on it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "development.md"


def map_rows(text: str) -> list[tuple[str, str]]:
    """(folder, file) for each file the code map's table names, e.g. ("xgov_digests/feed", "download.py"); a row
    with an empty first cell belongs to the wing of the row above."""
    section = text.split("### Code map", 1)[1]
    section = re.split(r"\n#{1,3} ", section, maxsplit=1)[0]
    rows, wing = [], None
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 3 or set(cells[0]) <= set("-: ") and set(cells[1]) <= set("-: "):
            continue
        if cells[0] == "wing":  # the header
            continue
        if cells[0]:
            named = re.match(r"`([\w]+)/`", cells[0])
            assert named, f"the code map's row does not start with a wing: {line}"
            wing = named[1]
        assert wing is not None, f"the code map's first row has no wing: {line}"
        folder = "stages" if wing == "stages" else f"xgov_digests/{wing}"
        rows += [(folder, name) for name in re.findall(r"`([\w]+\.py)`", cells[1])]
    return rows


def modules() -> set[tuple[str, str]]:
    """(folder, file) of every module of the stages and the library, ``__init__.py`` aside."""
    found = set()
    for base in ("stages", "xgov_digests"):
        for path in (ROOT / base).rglob("*.py"):
            if path.name != "__init__.py" and "__pycache__" not in path.parts:
                found.add((str(path.parent.relative_to(ROOT)), path.name))
    return found


def problems(text: str, root: Path = ROOT, present: set[tuple[str, str]] | None = None) -> list[str]:
    """What is wrong with the code map in ``text``: files it names that do not exist, modules it leaves out."""
    rows = map_rows(text)
    present = modules() if present is None else present
    missing = [(folder, name) for folder, name in rows if not (root / folder / name).is_file()]
    out = [f"names {folder}/{name}, which does not exist" for folder, name in missing]
    out += [f"leaves out {folder}/{name}" for folder, name in sorted(present - set(rows))]
    return out


def test_the_code_map_names_every_module_and_only_real_files() -> None:
    assert problems(DOC.read_text()) == [], "docs/development.md's code map is stale"
    assert len(map_rows(DOC.read_text())) >= 40  # the parser reads the table, not a line of it


def test_the_code_map_check_can_fail() -> None:
    text = DOC.read_text()
    moved = text.replace("| | `diskfull.py` |", "| `shard/` | `diskfull.py` |", 1)  # a file under the wrong wing
    assert moved != text
    assert "names xgov_digests/shard/diskfull.py, which does not exist" in problems(moved)
    assert "leaves out xgov_digests/core/diskfull.py" in problems(moved)
    left_out = re.sub(r"\| \| `cleanup\.py` \|[^\n]*\n", "", text)  # a module dropped from the map
    assert left_out != text and problems(left_out) == ["leaves out xgov_digests/clone/cleanup.py"]
    planted = modules() | {("xgov_digests/feed", "new_module.py")}  # a module added without its row
    assert problems(text, present=planted) == ["leaves out xgov_digests/feed/new_module.py"]
