"""SIGTERM at random moments of a make-driven ``dvc`` call's start-up: does a shard run on, or get recorded?

Each try starts ``python -m xgov_digests.operations.procgroup -- dvc repro --force --single-item shard@0`` (as ``make
repro`` did) in a one-shard workspace over 4 sample repos, sends the wrapper SIGTERM after a random delay, and counts
the tries where a shard process outlived the wrapper or ``dvc.lock`` changed (the stage was recorded after the signal).

    .venv/bin/python -m scripts.sigterm_startup --tries 30 --max-delay 2.5
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from tests.fixtures.sample import build_corpus
from tests.fixtures.workspace import create_workspace, git_commit


def shards_running(workspace: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        with_shard = "stages.shard" in " ".join(proc.info["cmdline"] or [])
        if proc.info["cwd"] == str(workspace) and with_shard and proc.status() != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=30)
    parser.add_argument("--max-delay", type=float, default=2.5, help="seconds; each delay is uniform in 0..this")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sigterm-") as scratch:
        root = Path(scratch)
        feed = root / "feed.json"
        feed.write_text(json.dumps(build_corpus(root / "corpus", 4)), encoding="utf-8")
        ws = create_workspace(
            root / "ws",
            {
                "feed": {"url": str(feed)},
                "ingest": {"allow_file_urls": True, "workers": 2, "cache": ""},
                "shards": {"batch_size": 1, "offsets": [0], "assign": "index"},
            },
        )
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", DVC_NO_ANALYTICS="1")
        subprocess.run(["dvc", "repro"], cwd=ws, env=env, check=True, capture_output=True)
        git_commit(ws, "ran")
        rng = random.Random(args.seed)
        outlived = recorded = 0
        for i in range(args.tries):
            before = (ws / "dvc.lock").read_bytes()
            delay = rng.uniform(0.0, args.max_delay)
            cmd = [
                sys.executable,
                "-m",
                "xgov_digests.operations.procgroup",
                "--grace",
                "5",
                "--",
                "dvc",
                "repro",
                "--force",
                "--single-item",
                "shard@0",
            ]
            proc = subprocess.Popen(
                cmd, cwd=ws, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
            )
            time.sleep(delay)
            proc.send_signal(signal.SIGTERM)
            returncode = proc.wait(60)
            left = shards_running(ws)
            time.sleep(3)  # a shard that ran on would have finished and been recorded by now
            changed = (ws / "dvc.lock").read_bytes() != before
            outlived += bool(left)
            recorded += changed
            print(
                f"try {i}: SIGTERM after {delay:.2f} s, exit {returncode}, shards left running {len(left)}, "
                f"dvc.lock changed {changed}",
                flush=True,
            )
            for leftover in left:
                leftover.kill()
            subprocess.run(["git", "checkout", "-q", "dvc.lock"], cwd=ws, check=True)
    print(f"{args.tries} tries: a shard outlived the wrapper {outlived}, the stage was recorded {recorded}")
    return 0 if outlived == recorded == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
