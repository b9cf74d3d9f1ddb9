"""kill -9 of make's process group: every command ``operations.procgroup`` started stops too, every shard command
``xgov-digests repro`` started is stopped by its watchdog, and the next run starts.

Real processes and real signals: the watchdog (``core.watchdog``) sees its parent die and stops the command's own
process group (SIGINT, SIGKILL after the grace); a real ``make -j 4 repro`` killed with SIGKILL mid-shards is followed
by a ``make -j 4 repro`` that succeeds and leaves every shard and aggregate up to date.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import Workspace, write_feed
from tests.fixtures.sample import build_corpus

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parents[1]
GROUP = [sys.executable, "-m", "xgov_digests.operations.procgroup"]  # a command in its own group, with its watchdog


def wait_for(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


@pytest.mark.slow
def test_kill_9_of_stages_group_stops_the_commands_group(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    script = f"touch {marker}; sleep 60 & sleep 60; wait"
    proc = subprocess.Popen([*GROUP, "--grace", "3", "--", "sh", "-c", script], start_new_session=True)
    wait_for(marker.exists)

    def sleeps() -> list[psutil.Process]:
        return [p for p in psutil.Process(proc.pid).children(recursive=True) if p.name() == "sleep"]

    wait_for(lambda: len(sleeps()) == 2, timeout=30)  # the shell starts them after the marker
    children = sleeps()
    os.killpg(proc.pid, signal.SIGKILL)  # make's group: procgroup dies, the command's own group does not
    proc.wait()
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert alive == []


LATE_CHILD = """
import signal, subprocess, sys, time
def stop(signum, frame):  # as dvc does when the signal lands while it forks the stage: the child starts after it
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    open(sys.argv[1], "w").write(str(child.pid))
    sys.exit(252)
signal.signal(signal.SIGINT, stop)
open(sys.argv[2], "w").close()
time.sleep(60)
"""


def test_a_process_started_after_the_stop_signal_is_stopped_too(tmp_path: Path) -> None:
    """The command starts a process after the group's SIGINT and exits without waiting for it: that process gets
    SIGTERM once the command has stopped, and does not run on."""
    child_pid, ready = tmp_path / "child.pid", tmp_path / "ready"
    proc = subprocess.Popen(
        [*GROUP, "--grace", "10", "--", sys.executable, "-c", LATE_CHILD, str(child_pid), str(ready)],
        start_new_session=True,
    )
    wait_for(ready.exists, timeout=60)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    wait_for(lambda: child_pid.exists() and child_pid.read_text(), timeout=10)
    late = int(child_pid.read_text())

    def stopped() -> bool:
        try:
            return psutil.Process(late).status() == psutil.STATUS_ZOMBIE  # dead, its parent gone before it
        except psutil.NoSuchProcess:
            return True

    wait_for(stopped, timeout=5)


def test_a_normal_exit_leaves_no_watchdog(tmp_path: Path) -> None:
    """The watchdog runs while the command does (it would stop the group if procgroup died) and ends with it."""
    marker = tmp_path / "started"
    proc = subprocess.Popen([*GROUP, "--", "sh", "-c", f"touch {marker}; sleep 1; exit 3"])
    wait_for(marker.exists, timeout=60)
    watchdogs = [
        p
        for p in psutil.Process(proc.pid).children()
        if "-I -S -c" in " ".join(p.cmdline()) and "killpg" in " ".join(p.cmdline())
    ]
    assert len(watchdogs) == 1
    assert proc.wait(timeout=60) == 3
    gone, alive = psutil.wait_procs(watchdogs, timeout=10)
    assert alive == []


@pytest.mark.slow
def test_next_make_repro_succeeds_after_kill_9_of_makes_group(workspace_factory, tmp_path: Path) -> None:
    feed = write_feed(tmp_path / "feed.json", build_corpus(tmp_path / "corpus", 8))
    ws: Workspace = workspace_factory(str(feed))
    ws.set_params(shards={"batch_size": 4, "offsets": [0, 1, 2, 3]})
    shutil.copy2(ROOT / "Makefile", ws.path / "Makefile")
    ws.commit("4 shards")
    make = ["make", "--no-print-directory", "-o", f"{VENV}/.installed", f"VENV={VENV}", "-j", "4", "repro"]
    log = tmp_path / "killed.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(make, cwd=ws.path, env=ws.env, stdout=fh, stderr=fh, start_new_session=True)
        wait_for(lambda: "Running stage 'shard@" in log.read_text(), timeout=300)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def dvc_left() -> list[int]:
        return [
            p.pid
            for p in psutil.process_iter(["cmdline", "cwd"])
            if p.info["cwd"] == str(ws.path) and "dvc" in " ".join(p.info["cmdline"] or [])
        ]

    def shards_left() -> list[int]:
        return [
            p.pid
            for p in psutil.process_iter(["cmdline", "cwd"])
            if p.info["cwd"] == str(ws.path) and "stages.shard" in " ".join(p.info["cmdline"] or [])
        ]

    wait_for(lambda: not dvc_left(), timeout=60)  # the watchdog stopped every dvc of the killed run
    wait_for(lambda: not shards_left(), timeout=60)  # the command's watchdog stopped every shard it had started
    again = ws.run(*make, timeout=900)
    assert "is busy" not in again.stderr and "Traceback" not in again.stderr
    status = ws.dvc("status").stdout
    assert status == "Data and pipelines are up to date.\n", status
