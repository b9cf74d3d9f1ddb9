"""Sample git repositories and a feed pointing at them: for the demo, the tests and the benchmarks.

python -m stages.sample OUT_DIR [--repos 12]   # writes OUT_DIR/repos/* and OUT_DIR/repos.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "Sample", "GIT_AUTHOR_EMAIL": "sample@example.invalid",
    "GIT_COMMITTER_NAME": "Sample", "GIT_COMMITTER_EMAIL": "sample@example.invalid",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
    "GIT_CONFIG_NOSYSTEM": "1",
}  # fmt: skip


def git(repo: Path, *args: str) -> str:
    env = dict(os.environ, **_GIT_ENV)
    out = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env)
    return out.stdout.strip()


def write_files(repo: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def commit(repo: Path, message: str) -> str:
    """Commit everything in ``repo``; return the new HEAD."""
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def make_repo(
    path: Path, files: dict[str, str | bytes], symlinks: dict[str, str] | None = None, commits: int = 1
) -> str:
    """Create a git repo at ``path`` with ``files`` (and symlinks) over ``commits`` commits; return HEAD."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    items = list(files.items())
    head = ""
    for i in range(commits):
        chunk = dict(items[i::commits]) if commits > 1 else dict(items)
        write_files(path, chunk)
        if i == commits - 1:
            for link, target in (symlinks or {}).items():
                (path / link).parent.mkdir(parents=True, exist_ok=True)
                os.symlink(target, path / link)
        head = commit(path, f"commit {i + 1}")
    return head


def sample_files(rng: random.Random, index: int) -> dict[str, str | bytes]:
    """A small, varied tree: nested code, docs, a binary, a large file, a non-ASCII name."""
    files: dict[str, str | bytes] = {
        "README.md": f"# Sample project {index}\n\nA small repository for the pipeline's demo and tests.\n",
        "src/app/__init__.py": "",
        "src/app/main.py": "".join(f"def f{i}(x):\n    return x * {i}\n\n" for i in range(rng.randint(3, 40))),
        "docs/guide.md": "\n".join(f"Line {i}: guidance." for i in range(rng.randint(5, 60))) + "\n",
        "data/logo.png": bytes([0x89, 0x50, 0x4E, 0x47, 0, 0, 0, 0]) + rng.randbytes(200),
        "café/naïve.txt": "Ünïcödé content ✓\n",
    }
    if index % 4 == 0:
        files["big/large.txt"] = "x" * 700_000 + "\n"  # over the default max_file_size
    if index % 3 == 0:
        files[".gitignore"] = "*.log\n"
        files["debug.log"] = "ignored\n"
    return files


def build_corpus(out: Path, n: int, seed: int = 1) -> list[dict[str, Any]]:
    """Build ``n`` repos under ``out/repos`` and return feed entries with ``file://`` URLs."""
    rng = random.Random(seed)
    entries = []
    for i in range(n):
        owner, name = f"org{i % 3}", f"project-{i:03d}"
        repo = out / "repos" / owner / name
        make_repo(repo, sample_files(rng, i), symlinks={"link-to-readme": "README.md"}, commits=2 if i % 2 else 1)
        entries.append({
            "owner": owner, "name": name, "description": f"Sample project {i}", "url": repo.resolve().as_uri(),
            "archived": False, "license": "MIT", "stargazersCount": i, "language": "Python",
            "forksCount": 0, "openIssuesCount": 0, "createdAt": "2024-01-01T00:00:00Z",
            "updatedAt": "2024-01-02T00:00:00Z", "pushedAt": f"2024-01-{1 + i % 28:02d}T00:00:00Z",
        })  # fmt: skip
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stages.sample", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, help="folder to create (must not exist)")
    parser.add_argument("--repos", type=int, default=12, help="how many repos (default 12)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.out.exists():
        parser.error(f"{args.out} exists; give a new folder")
    entries = build_corpus(args.out, args.repos, args.seed)
    (args.out / "repos.json").write_text(json.dumps(entries, indent=1), encoding="utf-8")
    print(args.out / "repos.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
