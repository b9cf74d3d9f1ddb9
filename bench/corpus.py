"""A seeded, reproducible corpus of synthetic git repositories and a feed that points at github.com.

Each repo is built from its own ``random.Random(f"{seed}:{index}")``, so repo ``i`` is the same whatever ``n`` is
(a quick corpus is a prefix of the full one). The spread mimics the real feed: most repos are small, some hold
thousands of files, some carry large or binary files, some have deep trees and non-ASCII names, ``.gitignore``
files (with negations), default-ignored folders (``node_modules``, ``build``) and symlinks. What a digest skips is
there in the shares real repos hold it (:func:`committed_extras`): lock files, images, committed ``vendor/`` and
``node_modules/`` trees, big binaries.

python -m bench corpus OUT --repos 200 --seed 7
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.fixtures.sample import make_repo

CORPUS_VERSION = 3  # bump when the generator changes: cached corpora are keyed by it

OWNERS = [
    "alphagov",
    "ministryofjustice",
    "hmrc",
    "dwp",
    "ukhomeoffice",
    "co-cddo",
    "nhsx",
    "defra",
    "companieshouse",
    "dfe-digital",
    "UKGovLD",
    "communitiesuk",
    "ONSdigital",
    "hmcts",
    "cabinetoffice",
]
WORDS = (
    "the service user account payment claim benefit tax record case court form request response data model "
    "view controller config deploy build test check validate render template page layout index search filter "
    "report export import schema migration queue worker job task event handler client server api route token "
    "session cache store file path name value status error message log metric alert health ready live"
).split()
NON_ASCII = ["café", "naïve", "résumé", "документы", "日本語", "Ünïcödé", "straße", "ñandú", "Ελληνικά", "emoji-✓"]
CODE_EXT = [".py", ".js", ".ts", ".rb", ".java", ".go", ".cs", ".tf", ".sh", ".kt", ".php", ".scala"]
TEXT_EXT = [".md", ".txt", ".yml", ".yaml", ".json", ".html", ".css", ".erb", ".xml", ".toml", ".ini", ".csv"]
BINARY_EXT = [".dat", ".woff2", ".ttf", ".xlsx", ".docx", ".zip", ".gz", ".bmp", ".parquet"]
IGNORED_BINARY_EXT = [".png", ".jpg", ".pdf", ".jar", ".ico", ".gif", ".mp4"]


@dataclass(frozen=True)
class RepoSpec:
    index: int
    owner: str
    name: str
    kind: str

    @property
    def url(self) -> str:
        return f"https://github.com/{self.owner}/{self.name}"


def _kind(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.40:
        return "tiny"
    if roll < 0.70:
        return "small"
    if roll < 0.88:
        return "medium"
    if roll < 0.96:
        return "large"
    return "binary"


def spec(seed: int, index: int) -> RepoSpec:
    rng = random.Random(f"{seed}:{index}:spec")
    owner = OWNERS[rng.randrange(len(OWNERS))]
    name = f"{rng.choice(WORDS)}-{rng.choice(WORDS)}-{index:05d}"
    return RepoSpec(index, owner, name, _kind(rng))


def _text(rng: random.Random, size: int) -> str:
    """About ``size`` bytes of line-structured text."""
    lines, total = [], 0
    while total < size:
        indent = "    " * rng.randrange(4)
        line = indent + " ".join(rng.choices(WORDS, k=rng.randint(2, 12)))
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines) + "\n"


def _size(rng: random.Random, median: int, cap: int) -> int:
    return max(0, min(cap, int(rng.lognormvariate(0, 1.2) * median)))


def _dir(rng: random.Random, depth_max: int, non_ascii: bool) -> str:
    parts = []
    for _ in range(rng.randint(0, depth_max)):
        word = rng.choice(NON_ASCII) if non_ascii and rng.random() < 0.15 else rng.choice(WORDS)
        parts.append(word)
    return "/".join(parts)


def repo_files(rng: random.Random, kind: str) -> tuple[dict[str, str | bytes], dict[str, str]]:
    """The files (and symlinks) of one repo of ``kind``."""
    n_files, median, depth_max = {
        "tiny": (rng.randint(2, 12), 800, 2),
        "small": (rng.randint(12, 80), 1500, 4),
        "medium": (rng.randint(100, 400), 3000, 6),
        "large": (rng.randint(1000, 3000), 1500, 8),
        "binary": (rng.randint(8, 40), 2000, 3),
    }[kind]
    non_ascii = rng.random() < 0.2
    files: dict[str, str | bytes] = {"README.md": f"# {rng.choice(WORDS).title()}\n\n" + _text(rng, 400)}
    if rng.random() < 0.6:
        files["LICENSE"] = "MIT License\n\n" + _text(rng, 1000)
    dirs = [_dir(rng, depth_max, non_ascii) for _ in range(max(1, n_files // 8))]
    for i in range(n_files):
        folder = rng.choice(dirs)
        roll = rng.random()
        if roll < 0.60:
            ext = rng.choice(CODE_EXT)
        elif roll < 0.90:
            ext = rng.choice(TEXT_EXT)
        elif roll < 0.96:
            ext = rng.choice(IGNORED_BINARY_EXT)
        else:
            ext = rng.choice(BINARY_EXT)
        stem = rng.choice(NON_ASCII) if non_ascii and rng.random() < 0.05 else f"{rng.choice(WORDS)}_{i}"
        path = f"{folder}/{stem}{ext}" if folder else f"{stem}{ext}"
        if ext in BINARY_EXT or ext in IGNORED_BINARY_EXT:
            files[path] = rng.randbytes(_size(rng, median * 4, 400_000))
        elif rng.random() < 0.02:
            files[path] = ""
        else:
            text = _text(rng, _size(rng, median, 300_000))
            files[path] = text.replace("\n", "\r\n") if rng.random() < 0.03 else text
    if kind == "binary":
        for i in range(rng.randint(1, 4)):
            files[f"assets/blob-{i}.dat"] = rng.randbytes(rng.randint(1_000_000, 8_000_000))
    if rng.random() < 0.08:
        files["data/big-export.csv"] = _text(rng, rng.randint(600_000, 3_000_000))  # over max_file_size
    if rng.random() < 0.25:
        files[".gitignore"] = "*.log\n/tmp/\n!keep.log\n# a comment\n\ncoverage/\n"
        files["keep.log"] = "kept by a negation\n"
        files["debug.log"] = "ignored\n"
    if rng.random() < 0.2:
        files["node_modules/left-pad/index.js"] = _text(rng, 2000)  # committed by mistake: gitingest skips it
        files["build/out.js"] = _text(rng, 3000)
    if rng.random() < 0.1:
        files["notebooks/analysis.ipynb"] = json.dumps(
            {
                "cells": [
                    {"cell_type": "markdown", "source": ["# Analysis\n", _text(rng, 200)]},
                    {
                        "cell_type": "code",
                        "source": ["x = 1\n", "print(x)"],
                        "outputs": [{"output_type": "stream", "text": ["1\n"]}],
                    },
                ],
                "metadata": {},
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        )
    if rng.random() < 0.05:
        files["/".join(f"d{i}" for i in range(rng.randint(21, 26))) + "/deep.txt"] = "very deep\n"
    if rng.random() < 0.1:
        files["docs/latin1.txt"] = "caf\xe9 cr\xe8me\n".encode("latin-1")
        files["docs/utf16.txt"] = "hello world\n".encode("utf-16")
    files.update(committed_extras(rng))
    symlinks = {}
    if rng.random() < 0.15:
        symlinks["link-to-readme"] = "README.md"
    return files, symlinks


def _code(rng: random.Random, size: int) -> str:
    """Source-like text with identifiers that vary (packs about 3:1, as real source does, not 10:1 as word soup)."""
    lines, total = [], 0
    while total < size:
        line = (
            "    " * rng.randrange(3)
            + f"{rng.choice(WORDS)}_{rng.getrandbits(24):x} = {rng.choice(WORDS)}("
            + ", ".join(f"{rng.getrandbits(16)}" for _ in range(rng.randint(0, 4)))
            + ")"
        )
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines) + "\n"


def committed_extras(rng: random.Random) -> dict[str, str | bytes]:
    """What real repositories commit besides their code, in shares estimated for the feed (not measured on it: the
    feed's repos are mostly web services, JavaScript and Ruby front-ends, Go and Python back-ends):

    * lock files: ``package-lock.json`` in 35% of repos (tens of kB to 1.5 MB of JSON), ``yarn.lock`` in 10%,
      ``Gemfile.lock`` in 20%: default-ignored by gitingest, and often the largest text file of a repo;
    * images: 45% of repos hold 1-12 (icons, logos, screenshots; a few kB to 1 MB, already compressed: random bytes);
    * a committed ``vendor/`` tree (Go modules, Ruby gems) in 5%: 200-1,500 source files;
    * a committed ``node_modules/`` tree in 3%: 300-2,000 small JavaScript files;
    the big binaries (the ``binary`` kind, 4%) and over-size CSV exports (8%) come from :func:`repo_files`."""
    out: dict[str, str | bytes] = {}
    if rng.random() < 0.35:
        out["package-lock.json"] = _code(rng, min(1_500_000, int(rng.lognormvariate(0, 1.0) * 150_000)))
    if rng.random() < 0.10:
        out["yarn.lock"] = _code(rng, min(1_000_000, int(rng.lognormvariate(0, 1.0) * 100_000)))
    if rng.random() < 0.20:
        out["Gemfile.lock"] = _code(rng, rng.randint(3_000, 20_000))
    if rng.random() < 0.45:
        for i in range(rng.randint(1, 12)):
            ext = rng.choice([".png", ".png", ".jpg", ".svg", ".ico", ".gif"])
            size = min(1_000_000, int(rng.lognormvariate(0, 1.3) * 25_000))
            out[f"{rng.choice(['app/assets/images', 'docs/images', 'public', 'static/img'])}/img_{i}{ext}"] = (
                rng.randbytes(size)
            )
    if rng.random() < 0.05:
        for i in range(rng.randint(200, 1_500)):
            out[f"vendor/{rng.choice(WORDS)}-{i % 40}/{rng.choice(WORDS)}_{i}.go"] = _code(
                rng, min(200_000, int(rng.lognormvariate(0, 1.0) * 6_000))
            )
    if rng.random() < 0.03:
        for i in range(rng.randint(300, 2_000)):
            out[f"node_modules/{rng.choice(WORDS)}-{i % 60}/lib/{rng.choice(WORDS)}_{i}.js"] = _code(
                rng, min(100_000, int(rng.lognormvariate(0, 1.0) * 3_000))
            )
    return out


def build_repo(out: Path, seed: int, index: int) -> RepoSpec:
    """Create repo ``index`` under ``out/owner/name`` (a normal work tree: ``git http-backend`` serves it)."""
    s = spec(seed, index)
    rng = random.Random(f"{seed}:{index}:files")
    files, symlinks = repo_files(rng, s.kind)
    path = out / s.owner / s.name
    make_repo(path, files, symlinks=symlinks)
    # One pack with a bitmap, as a hosting service keeps its repos: upload-pack then streams stored objects
    # instead of compressing loose ones for every clone (which would bill the server's work to our 2 cores).
    subprocess.run(["git", "-C", str(path), "repack", "-a", "-d", "-q", "--write-bitmap-index"], check=True)
    return s


def feed_entry(s: RepoSpec) -> dict[str, Any]:
    return {
        "owner": s.owner,
        "name": s.name,
        "description": f"Synthetic {s.kind} repo {s.index}",
        "url": s.url,
        "archived": False,
        "license": "MIT",
        "stargazersCount": s.index % 50,
        "language": "Python",
        "forksCount": 0,
        "openIssuesCount": 0,
        "createdAt": "2020-01-01T00:00:00Z",
        "updatedAt": "2024-01-02T00:00:00Z",
        "pushedAt": f"2024-{1 + s.index % 12:02d}-{1 + s.index % 28:02d}T00:00:00Z",
    }


def build_corpus(root: Path, n: int, seed: int = 7) -> tuple[Path, list[dict[str, Any]]]:
    """``root/repos/<owner>/<name>`` for ``n`` repos and ``root/feed.json``; reused when already built."""
    marker = root / "corpus.json"
    wanted = {"version": CORPUS_VERSION, "n": n, "seed": seed}
    if marker.exists() and json.loads(marker.read_text())["params"] == wanted:
        return root / "feed.json", json.loads((root / "feed.json").read_text())
    shutil.rmtree(root, ignore_errors=True)
    (root / "repos").mkdir(parents=True)
    specs = [build_repo(root / "repos", seed, i) for i in range(n)]
    entries = [feed_entry(s) for s in specs]
    (root / "feed.json").write_text(json.dumps(entries, indent=1), encoding="utf-8")
    kinds: dict[str, int] = {}
    for s in specs:
        kinds[s.kind] = kinds.get(s.kind, 0) + 1
    marker.write_text(json.dumps({"params": wanted, "kinds": kinds, "repos": [asdict(s) for s in specs]}, indent=1))
    return root / "feed.json", entries


def tree_stats(path: Path) -> dict[str, int]:
    """Files, bytes and depth of a work tree (``.git`` left out)."""
    files = size = depth = 0
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        files += len(filenames)
        size += sum(os.lstat(os.path.join(dirpath, f)).st_size for f in filenames)
        depth = max(depth, len(Path(dirpath).relative_to(path).parts))
    return {"files": files, "bytes": size, "depth": depth}


def synthetic_feed(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` feed entries (no repos behind them): for the fetch / dry-run / aggregate scale test."""
    return [feed_entry(spec(seed, i)) for i in range(n)]


def git_available() -> bool:
    return subprocess.run(["git", "--version"], capture_output=True).returncode == 0
