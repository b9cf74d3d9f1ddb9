"""Everything that changes a digest's bytes is in the shard's DVC key: the recorded versions match the lock, the
image and the workflow, the environment holds them, and the digest cache's fingerprint names them (an upgrade under
a real ``dvc repro``: tests/func/test_upgrade.py)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from xgov_digests.digest.version import DIGEST_VERSIONS, EnvironmentMismatch, check_environment, installed_versions
from xgov_digests.shard.cache import fingerprint

ROOT = Path(__file__).resolve().parents[3]


def locked() -> dict[str, str]:
    packages = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))["package"]
    return {p["name"]: p["version"] for p in packages}


def test_recorded_versions_are_the_locked_ones() -> None:
    versions = locked()
    for name, want in DIGEST_VERSIONS.items():
        if name != "python":
            assert versions[name] == want, f"{name}: uv.lock has {versions[name]}, version.py records {want}"


def test_recorded_python_is_the_one_the_image_and_the_workflow_run() -> None:
    python = DIGEST_VERSIONS["python"]
    assert re.search(rf"^FROM python:{re.escape(python)}-", (ROOT / "Dockerfile").read_text(), re.M)
    workflow = (ROOT / ".github/workflows/ingest.yml").read_text()
    assert set(re.findall(r'python-version: "([\d.]+)"', workflow)) == {python}
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    low = re.match(r">=\s*([\d.]+)", lock["requires-python"]).group(1)
    assert tuple(map(int, python.split("."))) >= tuple(map(int, low.split(".")))


def test_this_environment_holds_the_recorded_versions() -> None:
    check_environment()  # the test suite runs what the shards run


@pytest.mark.parametrize("name", sorted(DIGEST_VERSIONS))
def test_the_comparison_can_fail(name: str) -> None:
    found = dict(installed_versions(), **{name: "99.0"})
    with pytest.raises(EnvironmentMismatch, match=rf"{name} 99.0 \(recorded: {re.escape(DIGEST_VERSIONS[name])}\)"):
        check_environment(found)
    with pytest.raises(EnvironmentMismatch, match=f"{name} not installed"):
        check_environment(dict(installed_versions(), **{name: None}))


def test_the_digest_cache_fingerprint_names_every_recorded_version() -> None:
    from xgov_digests.core.params import IngestParams

    fp = fingerprint(IngestParams())
    for name, version in DIGEST_VERSIONS.items():
        assert f'"{name}": "{version}"' in fp
