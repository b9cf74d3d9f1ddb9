"""write_dataset on its own: every row's text is its digest file's bytes, the files do not depend on how many threads
wrote them, and a digest that cannot become a row (missing, not the one its stats row records, not UTF-8) is named."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from xgov_digests.core.files import digest_path, summaries_path
from xgov_digests.results import dataset
from xgov_digests.results.dataset import DatasetError, write_dataset
from xgov_digests.schemas.stats import Row, to_frame

TEXTS = {f"repo-{i:02d}": f"Repository: org/repo-{i:02d}\n" + "é line\n" * (i * 50) for i in range(12)}


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pd.DataFrame:
    """Twelve digests in three shards and their stats rows, in a workspace that is the working directory."""
    monkeypatch.chdir(tmp_path)
    rows, feed = [], []
    for i, (name, text) in enumerate(TEXTS.items()):
        url = f"https://github.com/org/{name}"
        path = digest_path(summaries_path(i % 3), "org", name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())
        row = Row(url, "org", name, i % 3, 3, "2026-11-01T00:00:00Z", status="ok", commit="c" * 40, files=1)
        row.digest_bytes, row.tokens, row.sha256 = len(text.encode()), i + 1, hashlib.sha256(text.encode()).hexdigest()
        rows.append(row)
        feed.append({"url": url, "language": "Python", "stargazersCount": i, "license": {"spdx_id": "MIT"}})
    Path("data").mkdir(exist_ok=True)
    Path("data/repos.json").write_text(json.dumps(feed))
    return to_frame(rows)


def test_every_row_is_its_digest_and_the_files_do_not_depend_on_the_threads(
    workspace: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    many = write_dataset(workspace, Path("many"), Path("data/repos.json"))
    table = pd.read_parquet("many")
    assert many["rows"] == len(table) == 12 and many["written"] == many["files"]
    assert dict(zip(table["name"], table["text"], strict=True)) == TEXTS
    monkeypatch.setattr(dataset.os, "cpu_count", lambda: 1)
    write_dataset(workspace, Path("one"), Path("data/repos.json"))
    files = {folder: {p.name: p.read_bytes() for p in Path(folder).iterdir()} for folder in ("many", "one")}
    assert files["many"] == files["one"]
    again = write_dataset(workspace, Path("one"), Path("data/repos.json"))
    assert again["written"] == 0 and again["files"] == many["files"]  # every bucket kept by its fingerprint


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.unlink(), "is missing"),
        (lambda p: p.write_bytes(p.read_bytes() + b"x"), "is not the digest its stats row records"),
        (lambda p: p.write_bytes(b"caf\xe9\n"), "is not UTF-8"),
    ],
    ids=["missing", "other-bytes", "not-utf8"],
)
def test_a_digest_that_cannot_become_a_row_is_named(workspace: pd.DataFrame, damage, message: str) -> None:
    path = digest_path(summaries_path(1), "org", "repo-04")
    if message == "is not UTF-8":  # its stats row records these bytes: only the encoding is wrong
        workspace.loc[workspace["name"] == "repo-04", "sha256"] = hashlib.sha256(b"caf\xe9\n").hexdigest()
    damage(path)
    with pytest.raises(DatasetError, match=f"{path}.*{message}.*dvc repro --force"):
        write_dataset(workspace, Path("out"), Path("data/repos.json"))


def test_the_write_options_are_part_of_a_buckets_fingerprint(
    workspace: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Buckets written with other options are rewritten (the same rows give the same bytes on every machine); the
    short columns are dictionary-encoded and the texts are not."""
    import pyarrow.parquet as pq

    first = write_dataset(workspace, Path("out"), Path("data/repos.json"))
    encodings: dict[str, set[str]] = {}
    for part in Path("out").iterdir():
        group = pq.ParquetFile(part).metadata.row_group(0)
        for k in range(group.num_columns):
            encodings.setdefault(group.column(k).path_in_schema, set()).update(group.column(k).encodings)
    assert "RLE_DICTIONARY" not in encodings["text"] and "RLE_DICTIONARY" in encodings["owner"]
    monkeypatch.setitem(dataset.WRITE_OPTIONS, "use_dictionary", True)
    again = write_dataset(workspace, Path("out"), Path("data/repos.json"))
    assert again["written"] == again["files"] == first["files"]
