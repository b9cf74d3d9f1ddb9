"""The digest pool's fork server starts when the pool is opened, before any digest is asked for: its imports overlap
the first clone instead of delaying the first digest."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.fixtures.workspace import ROOT

# A fresh interpreter opens a pool (with or without start()) and looks for its fork server among its children.
OPEN_POOL = """
import json, os, sys, time
from xgov_digests.digest.budget import DigestPool

def children_running(word):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1]
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        if ppid == str(os.getpid()) and word in cmdline:
            found.append(pid)
    return found

pool = DigestPool(1, 60)
if sys.argv[1] == "start":
    pool.start()
deadline = time.monotonic() + float(sys.argv[2])
while not children_running(b"forkserver") and time.monotonic() < deadline:
    time.sleep(0.05)
print(json.dumps({"server": bool(children_running(b"forkserver")), "workers": len(pool._all)}))
pool.close()
"""


def open_pool(how: str, wait_s: float) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", OPEN_POOL, how, str(wait_s)], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(done.stdout)


def test_the_fork_server_starts_with_the_pool_before_any_digest() -> None:
    assert open_pool("start", 20) == {"server": True, "workers": 0}


def test_the_fork_server_check_can_fail() -> None:
    """Without start(), nothing runs until the first digest: the check above sees no server."""
    assert open_pool("no-start", 1.0) == {"server": False, "workers": 0}
