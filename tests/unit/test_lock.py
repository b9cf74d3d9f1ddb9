"""The lock (uv.lock) agrees with pyproject.toml, covers the supported platforms, and every install path uses it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "xgov-digests"
PYTHONS = [(3, 11), (3, 12), (3, 13)]
ARCHES = ["x86_64", "aarch64"]


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def lock() -> dict[str, Any]:
    return tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))


def project_requirements() -> list[tuple[str | None, Requirement]]:
    """(extra or None, requirement) for every entry of pyproject's dependency tables."""
    project = pyproject()["project"]
    out: list[tuple[str | None, Requirement]] = [(None, Requirement(r)) for r in project["dependencies"]]
    for extra, reqs in project.get("optional-dependencies", {}).items():
        out += [(extra, Requirement(r)) for r in reqs]
    return out


def locked_packages() -> dict[str, list[dict[str, Any]]]:
    """name -> its locked entries (one per version where the resolution forks by Python version)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for pkg in lock()["package"]:
        out.setdefault(canonicalize_name(pkg["name"]), []).append(pkg)
    return out


def root_package() -> dict[str, Any]:
    (root,) = locked_packages()[PROJECT]
    return root


def environment(python: tuple[int, int], arch: str) -> dict[str, str]:
    version = f"{python[0]}.{python[1]}"
    return {
        "python_version": version,
        "python_full_version": f"{version}.0",
        "platform_machine": arch,
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }


def linux_tags(python: tuple[int, int], arch: str) -> set[Tag]:
    platforms = [f"manylinux_2_{minor}_{arch}" for minor in range(40, 16, -1)]
    platforms += [f"manylinux2014_{arch}", f"linux_{arch}"]
    return set(cpython_tags(python, platforms=platforms)) | set(compatible_tags(python, platforms=platforms))


def marker_text(marker: str) -> str:
    """One spelling of an environment marker (uv writes 'CPython' where pyproject may say "CPython")."""
    return str(Marker(marker)) if marker else ""


def test_lock_records_exactly_pyproject_dependency_tables() -> None:
    """uv.lock's record of the project's requirements is pyproject.toml's, entry for entry: edit one without
    `make lock` and this fails."""
    recorded = set()
    for entry in root_package()["metadata"]["requires-dist"]:
        extras = f"[{','.join(sorted(entry['extras']))}]" if entry.get("extras") else ""
        recorded.add(
            (
                canonicalize_name(entry["name"]),
                extras,
                str(Requirement(f"x{entry.get('specifier', '')}").specifier),
                marker_text(entry.get("marker", "")),
            )
        )
    declared = set()
    for extra, req in project_requirements():
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        marker = f"extra == '{extra}'" if extra else ""
        if req.marker:
            marker = f"({req.marker}) and {marker}" if marker else str(req.marker)
        declared.add((canonicalize_name(req.name), extras, str(req.specifier), marker_text(marker)))
    assert declared == recorded, (
        f"pyproject.toml and uv.lock disagree (run make lock): only in pyproject {sorted(declared - recorded)}, "
        f"only in uv.lock {sorted(recorded - declared)}"
    )
    meta = pyproject()["project"]
    assert lock()["requires-python"] == meta["requires-python"]
    assert sorted(root_package()["metadata"]["provides-extras"]) == sorted(meta["optional-dependencies"])


def test_every_pyproject_requirement_is_satisfied_by_its_locked_pin() -> None:
    packages = locked_packages()
    for extra, req in project_requirements():
        name = canonicalize_name(req.name)
        if name == PROJECT:  # an extra naming another of the project's extras (test = [..., "xgov-digests[plots]"])
            continue
        assert name in packages, f"{req} ({extra or 'runtime'}) is not in uv.lock: run make lock"
        for pkg in packages[name]:
            assert req.specifier.contains(Version(pkg["version"]), prereleases=True), (
                f"uv.lock pins {name}=={pkg['version']}, outside pyproject's {req}: run make lock"
            )
    # and the project's locked top-level dependencies are exactly pyproject's names
    root = root_package()
    top = {canonicalize_name(d["name"]) for d in root["dependencies"]}
    top |= {canonicalize_name(d["name"]) for deps in root["optional-dependencies"].values() for d in deps}
    assert top - {PROJECT} == {canonicalize_name(req.name) for _, req in project_requirements()} - {PROJECT}


def test_every_locked_package_has_hashes_and_installs_on_linux_x86_64_and_arm64() -> None:
    """Exact versions with hashes, and for each supported Python and architecture a wheel (or the sdist)."""
    missing = []
    for name, entries in locked_packages().items():
        for pkg in entries:
            if name == PROJECT:
                assert pkg["source"] == {"editable": "."}
                continue
            Version(pkg["version"])
            files = [*pkg.get("wheels", []), *([pkg["sdist"]] if "sdist" in pkg else [])]
            assert files and all(re.fullmatch(r"sha256:[0-9a-f]{64}", f["hash"]) for f in files), name
            if "sdist" in pkg:
                continue
            tags = {t for w in pkg["wheels"] for t in parse_wheel_filename(w["url"].rsplit("/", 1)[1])[3]}
            forks = [Marker(m) for m in pkg.get("resolution-markers", [])]
            for python in PYTHONS:
                for arch in ARCHES:
                    env = environment(python, arch)
                    if forks and not any(m.evaluate(env) for m in forks):
                        continue  # another locked version of this package serves that Python
                    if not tags & linux_tags(python, arch):
                        missing.append(f"{name}=={pkg['version']} on Python {python[0]}.{python[1]} {arch}")
    assert missing == []


def test_uv_says_the_lock_is_up_to_date_offline(tmp_path: Path) -> None:
    """uv's own check, offline and from an empty cache (nothing leaves the machine)."""
    uv = Path(sys.executable).parent / "uv"
    if not uv.exists():
        pytest.fail("uv is not in the virtual environment: make install puts it there (requirements-uv.txt)")
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy2(ROOT / name, tmp_path / name)
    env = {**os.environ, "UV_CACHE_DIR": str(tmp_path / "cache"), "UV_OFFLINE": "1", "UV_PYTHON_DOWNLOADS": "never"}
    ok = subprocess.run(
        [str(uv), "lock", "--locked", "--offline", "--python", sys.executable],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    # the same check fails once pyproject.toml asks for something the lock does not hold
    text = (tmp_path / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(text.replace('"tqdm>=4.60"', '"tqdm>=4.60", "six>=1.16"', 1))
    stale = subprocess.run(
        [str(uv), "lock", "--locked", "--offline", "--python", sys.executable],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert stale.returncode != 0


def test_uv_bootstrap_is_pinned_with_hashes() -> None:
    lines = [ln for ln in (ROOT / "requirements-uv.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    pins = [ln for ln in lines if not ln.strip().startswith("--hash")]
    assert len(pins) == 1 and re.match(r"uv==\d+\.\d+\.\d+ ", pins[0]), pins
    assert sum(ln.strip().startswith("--hash=sha256:") for ln in lines) >= 2  # x86-64 and arm64 wheels at least
    version = re.search(r"uv==(\S+)", pins[0])[1]
    assert re.search(rf"^UV_VERSION \?= {re.escape(version)}$", (ROOT / "Makefile").read_text(), re.M)


# ---- every install path installs from the lock -------------------------------------------------------------------


def dry_run(*targets: str, venv: Path) -> list[str]:
    """The commands `make` would run for ``targets`` with a venv that does not exist yet."""
    out = subprocess.run(
        ["make", "-n", "--no-print-directory", f"VENV={venv}", *targets],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [ln.strip() for ln in out.splitlines() if ln.strip()]


def check_installs_from_lock(commands: list[str], where: str) -> None:
    """Every pip/uv install is hash-checked from requirements-uv.txt or an export of uv.lock, or installs the
    project itself without dependencies; uv sync/export read the lock as it is (--locked/--frozen)."""
    for cmd in commands:
        if re.search(r"\buv (sync|export)\b", cmd):
            assert re.search(r"--(locked|frozen)\b", cmd), f"{where}: {cmd}"
        if re.search(r"\bpip install\b", cmd):
            hashed = "--require-hashes" in cmd and re.search(r"-r \S+", cmd)
            project_only = "--no-deps" in cmd and re.search(r"(^|\s)(-e )?\.(\s|$)", cmd)
            assert hashed or project_only, f"{where} installs outside the lock: {cmd}"
        assert not re.search(r"\buv (lock|pip compile)\b", cmd), f"{where} re-resolves: {cmd}"


def test_makefile_install_targets_sync_from_the_lock(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    for target in (".installed", ".installed-test", ".installed-bench"):
        commands = dry_run(str(venv / target), venv=venv)
        assert any(re.search(rf"{venv}/bin/uv sync .*--locked", c) for c in commands), commands
        assert commands[0].endswith(f"-m venv {venv}"), commands  # python3's own venv, nothing preinstalled
        check_installs_from_lock(commands, f"make {target}")
    syncs = [c for t in (".installed", ".installed-test") for c in dry_run(str(venv / t), venv=venv) if " sync " in c]
    assert syncs and all("--compile-bytecode" in c for c in syncs), syncs  # see test_dependencies_start_from_bytecode
    extras = {t: " ".join(dry_run(str(venv / t), venv=venv)) for t in (".installed-test", ".installed-bench")}
    assert "--extra test" in extras[".installed-test"] and "--extra bench" in extras[".installed-bench"]
    rules = (ROOT / "Makefile").read_text()
    assert re.search(r"^\$\(VENV\)/\.installed: .*\buv\.lock\b", rules, re.M), "the stamp must follow uv.lock"
    assert re.search(r"^\$\(UV\): requirements-uv\.txt", rules, re.M)
    for target in ("test", "test-fast", "demo", "lint"):
        assert ".installed-test" in " ".join(dry_run(target, venv=venv)), target


def test_dependencies_start_from_bytecode() -> None:
    """The installed packages carry their .pyc files: with PYTHONDONTWRITEBYTECODE set, as on CI machines, Python
    would otherwise compile DVC's sources again in every dvc and stage process (twice the start-up time)."""
    import importlib.util

    import dvc.repo
    import pandas.core.frame

    for module in (dvc.repo, pandas.core.frame):
        cached = Path(importlib.util.cache_from_source(module.__file__))
        assert cached.is_file(), f"{module.__name__}: no {cached}; install with make (uv sync --compile-bytecode)"


def test_makefile_test_targets_use_xdist_and_keep_pytest_exit_codes(tmp_path: Path) -> None:
    """make test runs ruff and the whole suite on xdist workers; test-fast the unit tests (tests/unit), chosen by
    folder, not by marker. Nothing hides a non-zero pytest exit (5: no test ran)."""
    venv = tmp_path / "venv"
    test = dry_run("-o", str(venv / ".installed-test"), "test", venv=venv)
    assert any("ruff check" in c for c in test)
    (pytest_cmd,) = [c for c in test if re.search(r"/bin/pytest\b", c)]
    assert re.search(r"-n \d+", pytest_cmd) and " -m " not in pytest_cmd
    fast = dry_run("-o", str(venv / ".installed-test"), "test-fast", venv=venv)
    (fast_cmd,) = [c for c in fast if re.search(r"/bin/pytest\b", c)]
    assert re.search(r"-n \d+", fast_cmd) and re.search(r"\stests/unit(\s|$)", fast_cmd) and " -m " not in fast_cmd
    for cmd in (pytest_cmd, fast_cmd):
        assert not re.search(r"\|\||;|\btrue\b", cmd), cmd
    rules = (ROOT / "Makefile").read_text()
    assert not re.search(r"^\t-.*pytest", rules, re.M), "a '-' recipe prefix would ignore pytest's exit status"


def test_dockerfile_installs_the_locked_runtime_set() -> None:
    from tests.fixtures.dockerfile import DOCKERFILE, dockerignore_includes, instructions

    ins = instructions(DOCKERFILE.read_text())
    copied = {a for word, args in ins if word == "COPY" for a in args.split() if not a.startswith("--")}
    assert {"uv.lock", "requirements-uv.txt"} <= copied <= copied | set(dockerignore_includes())
    assert {"uv.lock", "requirements-uv.txt"} <= set(dockerignore_includes())
    runs = [args for word, args in ins if word == "RUN"]
    commands = [c.strip() for args in runs for c in re.split(r"&&|;", args)]
    check_installs_from_lock(commands, "Dockerfile")
    export = [c for c in commands if re.search(r"\buv export\b", c)]
    assert len(export) == 1 and "--no-dev" in export[0] and not re.search(r"--extra|--all-extras", export[0])
    out = re.search(r"-o (\S+)", export[0])[1]
    assert any(re.search(rf"--require-hashes .*-r {re.escape(out)}", c) for c in commands), commands
    assert any(re.search(r"--require-hashes .*-r requirements-uv\.txt", c) for c in commands), commands
    froms = [args for word, args in ins if word == "FROM"]
    python = tuple(int(p) for p in re.search(r":(\d+)\.(\d+)", froms[0]).groups())
    assert python in PYTHONS


def test_workflow_jobs_install_with_make_from_the_lock() -> None:
    workflow = YAML(typ="safe").load((ROOT / ".github" / "workflows" / "ingest.yml").read_text(encoding="utf-8"))
    for name, job in workflow["jobs"].items():
        steps = job["steps"]
        runs = [s.get("run", "") for s in steps]
        assert any(re.fullmatch(r"\s*make install\s*", r) for r in runs), f"{name}: no make install step"
        check_installs_from_lock([c for r in runs for c in r.splitlines()], f"workflow job {name}")
        for step in steps:
            if step.get("uses", "").startswith("actions/setup-python@"):
                version = tuple(int(p) for p in str(step["with"]["python-version"]).split("."))
                assert version in PYTHONS, f"{name}: Python {version} is not one the lock covers"
                assert "uv.lock" in step["with"].get("cache-dependency-path", "uv.lock")
            if step.get("uses", "").startswith("actions/cache@"):
                assert "hashFiles('uv.lock')" in step["with"]["key"], f"{name}: cache not keyed on the lock"


def test_ci_script_installs_through_make_and_fails_on_any_test_failure() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    lines = [ln.split("#")[0].strip() for ln in script.splitlines()]
    lines = [ln for ln in lines if ln]
    assert "set -euo pipefail" in lines
    assert "make test" in lines, "CI runs the whole suite through make (which installs from the lock)"
    check_installs_from_lock(lines, ".ci/run")
    assert not any(re.search(r"\bpip3? install\b|\bvenv\b", ln) and "apt-get" not in ln for ln in lines), lines
    assert not any(re.search(r"make test.*(\|\||;)", ln) for ln in lines), "make test's exit status must stand"


def test_the_readme_upgrade_command_upgrades_that_one_package(tmp_path: Path) -> None:
    """The upgrade command the README shows (as code: its wording is free) upgrades that one package in uv.lock."""
    assert "`make lock UPGRADE=<name>`" in (ROOT / "README.md").read_text(encoding="utf-8")
    commands = dry_run("lock", "UPGRADE=gitingest", venv=tmp_path / "venv")
    assert any(re.search(r"\buv lock --upgrade-package gitingest$", cmd) for cmd in commands), commands
