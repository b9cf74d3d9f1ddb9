"""The digest pool's fork server starts when the pool is opened, before any digest is asked for: its imports overlap
the first clone instead of delaying the first digest."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

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


# A fresh interpreter digests a folder: through a pool (whose fork server imports the preload), in-process after the
# fork server's preload, or in-process after importing gitingest whole. It prints the digest and which of gitingest's
# heavy imports the process that made it holds (the pool's: by the compiled pydantic-core library in its memory map).
DIGEST = """
import base64, json, os, sys
from pathlib import Path
from xgov_digests.core.params import DigestSettings
from xgov_digests.digest.format import Header
from xgov_digests.digest.rules import Limits

HEAVY = ("gitingest.entrypoint", "gitingest.ingestion", "gitingest.output_formatter", "httpx", "pydantic", "requests")
folder, how, max_files, depth = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
header = Header("owner", "repo", "https://github.com/owner/repo", "0" * 40, None)
settings = DigestSettings(max_summary_bytes=6000, max_files=max_files)

def pydantic_core_mapped(pid):
    return ["pydantic_core"] if "_pydantic_core" in open(f"/proc/{pid}/maps").read() else []

if how == "pool":
    from xgov_digests.digest.budget import DigestPool

    with DigestPool(1, 60) as pool:
        digest = pool.digest(folder, header, settings)
        loaded = pydantic_core_mapped(next(iter(pool._all)).process.pid)
else:
    if how == "preload":
        import xgov_digests.digest.server_preload
    else:
        import gitingest.ingestion

        if depth:
            gitingest.ingestion.MAX_DIRECTORY_DEPTH = int(depth)
    from xgov_digests.digest.build import make_digest

    digest = make_digest(folder, header, max_file_size=settings.max_file_size, max_summary_bytes=6000,
                         limits=Limits(max_files, 0))
    loaded = [m for m in HEAVY if m in sys.modules] + pydantic_core_mapped(os.getpid())
print(json.dumps({"data": base64.b64encode(digest.data).decode(), "files": digest.files,
                  "truncated": digest.truncated, "walk_limit": digest.walk_limit, "loaded": loaded}))
"""


def _varied_tree(root: Path) -> Path:
    """Text, CRLF, latin-1, binary, empty, notebooks (good and broken), an ignore rule and a deep folder: every kind
    of content a digest decodes with one of gitingest's modules, and a folder past gitingest's depth limit."""
    files = {
        "README.md": b"# demo\n",
        "src/app.py": b"print('hi')\r\n" * 40,
        "src/latin.txt": "caf\u00e9 cr\u00e8me\n".encode("latin-1") * 30,
        "src/blob.bin": bytes(range(256)) * 8,
        "src/empty.txt": b"",
        "nb/good.ipynb": json.dumps(
            {"cells": [{"cell_type": "code", "source": ["x = 1\n"], "outputs": []}], "metadata": {}}
        ).encode(),
        "nb/broken.ipynb": b"{not json",
        "deep/" + "d/" * 22 + "f.txt": b"deep\n",
        ".gitignore": b"*.log\n",
        "skip.log": b"ignored\n",
        "notes/guide.md": b"guide line\n" * 400,
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def digest_in(folder: Path, how: str, max_files: int = 0, depth: str = "") -> dict:
    done = subprocess.run(
        [sys.executable, "-c", DIGEST, str(folder), how, str(max_files), depth],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(done.stdout)


def _without_loaded(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "loaded"}


def test_a_digest_process_holds_only_the_gitingest_it_runs_and_digests_alike(tmp_path: Path) -> None:
    """The fork server registers gitingest's packages without their __init__: its digest processes never load the
    web clients, pydantic or the output formatter, and their digests are those of a process holding gitingest
    whole, byte for byte: cut at 6,000 bytes, and with max_files 3; the folder past gitingest's depth limit is left
    out alike."""
    folder = _varied_tree(tmp_path / "repo")
    whole = {}
    for max_files in (0, 3):
        whole[max_files] = digest_in(folder, "whole", max_files)
        for how in ("pool", "preload"):
            light = digest_in(folder, how, max_files)
            assert light["loaded"] == [], how
            assert _without_loaded(light) == _without_loaded(whole[max_files]), (how, max_files)
    assert whole[0]["truncated"] and whole[0]["walk_limit"] == "depth"  # the cut and the depth limit bit
    assert whole[3]["files"] == 3 < whole[0]["files"]  # and max_files did
    assert b"deep" not in base64.b64decode(whole[0]["data"]).split(b"Directory structure:")[1]


def test_the_loaded_modules_check_can_fail(tmp_path: Path) -> None:
    """Imported the usual way, gitingest brings what the digest processes go without; and the digests' comparison
    tells a walk under other limits apart (gitingest's depth limit set to 0 where gitingest's walk reads it)."""
    folder = _varied_tree(tmp_path / "repo")
    whole = digest_in(folder, "whole")
    assert {"gitingest.entrypoint", "httpx", "pydantic", "pydantic_core"} <= set(whole["loaded"])
    assert digest_in(folder, "whole", depth="0")["data"] != whole["data"]
