"""What a person sees: human lines and a progress bar on a terminal, JSON lines elsewhere or when asked, one summary
line per shard, and none of DVC's staging hints repeated under make."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest

from tests.conftest import Workspace, write_feed
from tests.fixtures.workspace import git_commit
from xgov_digests.operations.dvc import without_hints

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parents[1]
STAGING_HINT = "To track the changes with git"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def on_terminal(
    cmd: list[str], cwd: Path, env: dict[str, str], rows: int = 24, columns: int = 120, timeout: float = 300
) -> tuple[int, str]:
    """Run ``cmd`` with a pseudo-terminal of ``rows`` x ``columns`` as stdout and stderr; its exit status and output."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, timeout=timeout)
    os.close(slave)
    reader.join(timeout=10)
    os.close(master)
    return proc.returncode, b"".join(chunks).decode(errors="replace")


def shard_cmd(feed: Path) -> list[str]:
    return [sys.executable, "-m", "stages.shard", "--batch-size", "2", "--offset", "0", "--feed", str(feed)]


@pytest.fixture
def shard_feed(workspace_factory, corpus, tmp_path: Path) -> tuple[Workspace, Path]:
    _, entries = corpus
    missing = dict(entries[0], owner="org9", name="missing", url=(tmp_path / "missing").as_uri())
    ws = workspace_factory("unused")
    ws.set_params(shards={"assign": "index"})  # index: shard 0 of 2 holds 4 of the 7 repos, the missing one with them
    return ws, write_feed(tmp_path / "feed.json", [*entries[:6], missing])


# ---- the shard: human and a bar on a terminal, JSON lines otherwise ----


@pytest.mark.slow
@pytest.mark.parametrize("size", [(24, 120), (0, 0)], ids=["sized", "no-size"])
def test_a_shard_on_a_terminal_prints_a_bar_and_human_lines_and_json_lines_otherwise(
    shard_feed, size: tuple[int, int]
) -> None:
    """(0, 0) is a pseudo-terminal that reports no size (``script`` with no outer terminal): tqdm draws nothing
    there unless given a size, which is why no bar ever appeared under ``script -qc 'make run'``."""
    ws, feed = shard_feed
    piped = ws.run(*shard_cmd(feed)).stderr  # first run: 3 ok, the missing repo failed
    lines = [json.loads(ln) for ln in piped.splitlines()]  # every line is JSON
    progress = [ln["message"] for ln in lines if ln["message"].startswith("Processing batch")]
    assert progress and progress[-1] == "Processing batch 2, offset 0: 4/4 repos", progress
    done = [ln for ln in lines if ln["message"].startswith("Batch 2, offset 0 complete")]
    assert len(done) == 1 and done[0]["repos"] == 4 and "human" not in done[0], done
    assert "\r" not in piped and "repo/s" not in piped

    rows, columns = size
    status, shown = on_terminal(shard_cmd(feed), ws.path, ws.env, rows, columns)  # again: from the cache
    assert status == 0, shown
    assert "shard 0/2:" in shown and "repo/s" in shown and "4/4" in shown, shown  # the bar, drawn to the end
    assert "ok=0 cached=3 failed=1" in shown, shown
    text = [ln.rsplit("\r", 1)[-1] for ln in shown.replace("\r\n", "\n").split("\n")]
    summaries = [ln.strip() for ln in text if ln.startswith("shard 0/2  4 repos")]
    assert len(summaries) == 1, text
    assert re.fullmatch(r"shard 0/2  4 repos  0 ok  3 cached  1 failed \(1 permanent\)  done in [\d.]+ s", summaries[0])
    warnings = [ln for ln in text if "warning:" in ln]
    assert len(warnings) == 1 and warnings[0].startswith("shard 0/2  warning: repo failed  "), text
    assert "/missing" in warnings[0] and "failure_kind=permanent" in warnings[0], warnings
    assert "{" not in shown and "Processing batch" not in shown  # no JSON, and the bar replaces the progress lines


@pytest.mark.slow
def test_the_log_format_can_be_asked_for(shard_feed) -> None:
    ws, feed = shard_feed
    ws.run(*shard_cmd(feed))
    status, shown = on_terminal(shard_cmd(feed), ws.path, {**ws.env, "XGOV_LOG_FORMAT": "json"})
    assert status == 0
    lines = [ln for ln in shown.replace("\r\n", "\n").split("\n") if ln]
    assert lines and all(json.loads(ln)["batch_size"] == 2 for ln in lines)  # JSON only: no bar on the terminal
    assert "repo/s" not in shown

    human = ws.run(*shard_cmd(feed), env={"XGOV_LOG_FORMAT": "human"}).stderr  # in a pipe: lines, no bar
    assert "shard 0/2  4/4 repos  ok=0 cached=3 failed=1" in human and "{" not in human and "\r" not in human, human
    assert "shard 0/2  4 repos  0 ok  3 cached  1 failed (1 permanent)  done in" in human, human

    for bad in ("yaml", "JSONL", "1"):
        wrong = ws.run(*shard_cmd(feed), env={"XGOV_LOG_FORMAT": bad}, check=False)
        assert wrong.returncode == 2 and wrong.stderr.strip().splitlines() == [
            f"error: XGOV_LOG_FORMAT={bad.lower()!r} is not one of auto, json, human: unset it or pick one"
        ], wrong.stderr


# ---- DVC's hints under make ----


HINTED = b"""Running stage 'shard@0':
> python -m stages.shard --batch-size 10 --offset 0
Updating lock file 'dvc.lock'

To track the changes with git, run:

\tgit add data/stats/.gitignore dvc.lock

To enable auto staging, run:

\tdvc config core.autostage true
Use `dvc push` to send your updates to remote storage.
\x1b[0m"""


def test_quiet_dvc_drops_only_the_hint_blocks() -> None:
    lines = list(without_hints(HINTED.splitlines(keepends=True)))
    assert (
        b"".join(lines) == b"Running stage 'shard@0':\n> python -m stages.shard --batch-size 10 --offset 0\n"
        b"Updating lock file 'dvc.lock'\n"
    )
    other = [b"a\n", b"\n", b"\tindented\n", b"\n", b"b\n"]
    assert list(without_hints(other)) == other  # blank and indented lines elsewhere stay


def dvc_repo(path: Path, env: dict[str, str]) -> Path:
    """A git + DVC repo with a stage that succeeds and one that fails."""
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=path, env=env, check=True)
    (path / "dvc.yaml").write_text(
        "stages:\n  good:\n    cmd: echo made > out.txt\n    outs: [out.txt]\n"
        "  bad:\n    cmd: echo broken >&2; exit 3\n    deps: [out.txt]\n"
    )
    git_commit(path, "pipeline")
    return path


@pytest.mark.slow
def test_quiet_dvc_keeps_errors_and_the_exit_status(tmp_path: Path) -> None:
    env = dict(os.environ, PATH=f"{VENV}/bin:{os.environ['PATH']}", DVC_NO_ANALYTICS="1")
    quiet = [sys.executable, "-m", "xgov_digests.operations.procgroup", "--drop-hints", "--", "dvc"]

    def run(repo: Path, *cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(cmd), cwd=repo, env=env, capture_output=True, text=True, timeout=120)

    plain_repo, quiet_repo = dvc_repo(tmp_path / "plain", env), dvc_repo(tmp_path / "quiet", env)
    plain = run(plain_repo, "dvc", "repro", "--single-item", "good")
    assert STAGING_HINT in plain.stdout and "Use `dvc push`" in plain.stdout  # what the filter is for
    good = run(quiet_repo, *quiet, "repro", "--single-item", "good")
    assert good.returncode == 0 and "Running stage 'good'" in good.stdout, good
    assert STAGING_HINT not in good.stdout + good.stderr and "dvc push" not in good.stdout + good.stderr, good

    plain_bad = run(plain_repo, "dvc", "repro", "--single-item", "bad")
    bad = run(quiet_repo, *quiet, "repro", "--single-item", "bad")
    assert bad.returncode == plain_bad.returncode != 0
    assert bad.stderr == plain_bad.stderr and "broken" in bad.stderr and "failed to reproduce 'bad'" in bad.stderr


@pytest.mark.slow
def test_make_run_on_a_local_feed_prints_the_staging_hint_at_most_once(workspace_factory, corpus, tmp_path) -> None:
    _, entries = corpus
    ws = workspace_factory(str(write_feed(tmp_path / "feed.json", entries[:12])))
    ws.set_params(shards={"batch_size": 4, "offsets": [0, 1, 2, 3]})
    ws.commit("4 shards")
    shutil.copy2(ROOT / "Makefile", ws.path / "Makefile")
    make = ["make", "--no-print-directory", "-o", f"{VENV}/.installed", f"VENV={VENV}"]

    run = ws.run(*make, "-j", "4", "run", timeout=600)
    out = run.stdout + run.stderr
    assert out.count(STAGING_HINT) == 0 and "To enable auto staging" not in out and "Use `dvc push`" not in out, out
    assert out.count("the run's files are staged; next: git commit") == 1, out  # make run's own line, once
    assert "done in" not in out  # in a pipe: JSON lines, not the human summary
    assert sorted(json.loads(ln)["offset"] for ln in out.splitlines() if ln.startswith("{") and "complete:" in ln) == [
        0,
        1,
        2,
        3,
    ]  # one summary a shard
    assert ws.git("diff", "--cached", "--name-only").count("dvc.lock") == 1  # and it did stage

    ws.commit("night 1")
    ws.set_params(ingest={"max_summary_bytes": 4096})  # every shard runs again (from the digest cache)
    repro = ws.run(*make, "-j", "4", "repro", timeout=600)
    out = repro.stdout + repro.stderr
    assert out.count(STAGING_HINT) == 0, out
    hints = [ln for ln in out.splitlines() if ln.startswith("repro: to track the changes with git")]
    assert hints == [
        "repro: to track the changes with git: git add -A -- dvc.lock params.yaml data reports; then "
        "dvc push (make run stages and pushes by itself)"
    ], out
    ws.run("git", "add", "-A", "--", "dvc.lock", "params.yaml", "data", "reports")
    ws.commit("night 2")
    nothing = ws.run(*make, "repro", timeout=600)  # nothing to stage: no hint
    assert "to track the changes" not in (nothing.stdout + nothing.stderr).lower(), nothing.stdout


# ---- make publish: one bar, one summary line ----


@pytest.fixture
def publish_site(s3_server, tmp_path: Path):
    from tests.fixtures.publish_site import S3, Site
    from tests.fixtures.s3proxy import S3Proxy

    proxy = S3Proxy(s3_server.server.get_host_and_port())
    s3 = S3(s3_server, proxy)
    bucket = f"people-{os.getpid()}-{tmp_path.name[-6:].lower().replace('_', '-')}"
    s3.client().create_bucket(Bucket=bucket)
    site = Site(tmp_path / "ws", s3, bucket)
    shutil.copy2(ROOT / "Makefile", site.path / "Makefile")
    yield site
    proxy.stop()


def make_publish(site, terminal: bool) -> tuple[int, str, str]:
    cmd = ["make", "--no-print-directory", "-s", "-o", f"{VENV}/.installed", f"VENV={VENV}", "publish"]
    if terminal:
        status, out = on_terminal(cmd, site.path, site.env)
        return status, out, ""
    result = subprocess.run(cmd, cwd=site.path, env=site.env, capture_output=True, text=True, timeout=300)
    return result.returncode, result.stdout, result.stderr


@pytest.mark.slow
def test_make_publish_prints_one_summary_line_and_one_bar_on_a_terminal(publish_site) -> None:
    from tests.fixtures.publish_site import SUMMARY_RE

    site = publish_site
    site.add(40)
    site.write()
    status, out, err = make_publish(site, terminal=False)  # first publish: every digest uploaded
    assert status == 0, out + err
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1 and SUMMARY_RE.match(lines[0]) and "uploaded 40," in lines[0], out  # the summary only
    logged = [json.loads(ln) for ln in err.splitlines()]  # stderr: JSON lines, none per object
    assert [e["message"] for e in logged].count("no index yet: first publish") == 1, logged
    assert not [e for e in logged if e["message"].startswith(("uploaded", "publish: "))], logged
    assert [e["message"] for e in logged][-1] == "published" and logged[-1]["uploaded"] == 40

    site.change(*list(site.repos.values())[:30])
    site.write()
    status, shown = make_publish(site, terminal=True)[:2]  # 30 changed digests, on a terminal
    assert status == 0, shown
    shown = ANSI.sub("", shown)
    text = [ln.rsplit("\r", 1)[-1].strip() for ln in shown.replace("\r\n", "\n").split("\n")]
    text = [ln for ln in text if ln]
    assert len(text) == 1 and SUMMARY_RE.search(text[0]) and "uploaded 30," in text[0], text  # one line stays
    bars = {ln.split("|")[0] for ln in shown.replace("\r", "\n").split("\n") if "digest/s" in ln}
    assert bars and all(b.startswith("publish:") for b in bars), shown  # one bar, drawn as it goes
    assert "{" not in shown, shown
