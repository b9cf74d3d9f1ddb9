"""How many digest processes a shard runs at once: one a usable core, never more than the repos in flight."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.fixtures.workspace import ROOT
from xgov_digests.shard.run import digest_processes

# In a fresh interpreter pinned to the first N of this machine's cores: digest_processes(workers, repos).
PINNED = """
import os, sys
os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: int(sys.argv[1])])
from xgov_digests.shard.run import digest_processes
print(digest_processes(int(sys.argv[2]), int(sys.argv[3])))
"""


def pinned(cores: int, workers: int, repos: int) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PINNED, str(cores), str(workers), str(repos)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return int(done.stdout)


def test_one_digest_process_a_usable_core() -> None:
    assert pinned(1, 8, 24) == 1
    usable = len(os.sched_getaffinity(0))
    assert digest_processes(64, 10_000) == usable


def test_never_more_than_the_workers_or_the_repos() -> None:
    usable = len(os.sched_getaffinity(0))
    assert digest_processes(1, 24) == 1
    assert digest_processes(8, 1) == 1
    assert digest_processes(8, 0) == 1  # an empty shard opens no pool; asked, it is one process
    if usable >= 2:
        assert pinned(2, 8, 24) == 2 and pinned(2, 1, 24) == 1
