"""A corpus of real public-sector repositories: the tip of each, served as ``https://github.com/<owner>/<name>``.

The repositories come from bare git repositories already on this machine (``--mirrors``, default
``/work/.mirror`` or ``$XGOV_BENCH_MIRRORS``), one per ``<owner>+<name>/repo`` (or ``<owner>/<name>.git``): see
bench/README.md for how to get them. Nothing of theirs is committed or packaged; the corpus is built in
``bench/work/``, which git and DVC ignore.

Each repository is reduced to its default branch's tip (``git clone --bare --depth 1``) and repacked into one pack
with a bitmap, the way the synthetic corpus is (upload-pack then streams stored objects instead of recompressing a
history's deltas for every clone on the same 2 cores). The tip's trees and blobs, which are all a shallow clone
downloads, are the real ones. Each repository is served under ``copies`` distinct owners (``<owner>``,
``<owner>-copy1``, ...; symbolic links to the one reduced copy), so a run clones ``copies`` x as many repos.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

# 16 public repositories of UK public-sector bodies, of the shapes the feed holds: large front-end monorepos
# (Node, Sass, Nunjucks), Go and Ruby services, Python and Ruby libraries, Scala/Play templates.
REPOS = (
    "alphagov/router",
    "alphagov/govuk-frontend",
    "nhsuk/nhsuk-frontend",
    "ONSdigital/design-system",
    "hmrc/play-frontend-hmrc",
    "alphagov/notifications-python-client",
    "alphagov/govuk-frontend-jinja",
    "alphagov/govuk-country-and-territory-autocomplete",
    "alphagov/notifications-utils",
    "alphagov/govuk-design-system",
    "alphagov/accessible-autocomplete",
    "alphagov/slimmer",
    "alphagov/govuk-prototype-kit",
    "alphagov/pay-js-commons",
    "alphagov/govspeak",
    "alphagov/gds-api-adapters",
)
CORPUS_VERSION = 1


class MirrorMissing(RuntimeError):
    """A repository of :data:`REPOS` is not on this machine."""


def default_mirrors() -> Path:
    return Path(os.environ.get("XGOV_BENCH_MIRRORS", "/work/.mirror"))


def find_mirror(mirrors: Path, full_name: str) -> Path | None:
    owner, name = full_name.split("/")
    for candidate in (mirrors / f"{owner}+{name}" / "repo", mirrors / owner / f"{name}.git", mirrors / owner / name):
        if (candidate / "HEAD").is_file() or (candidate / ".git" / "HEAD").is_file():
            return candidate
    return None


def _git(*args: str, cwd: Path | None = None) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()[-300:]}")
    return done.stdout.strip()


def _reduce(mirror: Path, dest: Path) -> dict[str, Any]:
    """``dest``: a bare repo holding the tip of ``mirror``'s default branch, in one pack with a bitmap."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    _git(
        "clone",
        "--quiet",
        "--bare",
        "--depth",
        "1",
        "--single-branch",
        "--no-tags",
        mirror.resolve().as_uri(),
        str(tmp),
    )
    _git("-C", str(tmp), "repack", "-a", "-d", "-q", "--write-bitmap-index")
    commit = _git("-C", str(tmp), "rev-parse", "HEAD")
    when = _git("-C", str(tmp), "log", "-1", "--format=%cI", "HEAD")
    listing = _git("-C", str(tmp), "ls-tree", "-r", "-l", "HEAD").splitlines()
    size = sum(int(parts[3]) for ln in listing if len(parts := ln.split(None, 4)) == 5 and parts[3].isdigit())
    tmp.rename(dest)
    return {"commit": commit, "committed_at": when, "files": len(listing), "bytes": size}


def feed_entry(owner: str, name: str, info: dict[str, Any]) -> dict[str, Any]:
    return {
        "owner": owner,
        "name": name,
        "description": f"Real repository {info['source']}",
        "url": f"https://github.com/{owner}/{name}",
        "archived": False,
        "license": "MIT",
        "stargazersCount": 0,
        "language": None,
        "forksCount": 0,
        "openIssuesCount": 0,
        "createdAt": "2020-01-01T00:00:00Z",
        "updatedAt": info["committed_at"],
        "pushedAt": info["committed_at"],
    }


def build(
    root: Path, mirrors: Path | None = None, copies: int = 3, repos: tuple[str, ...] = REPOS
) -> tuple[Path, list[dict[str, Any]], dict[str, Any]]:
    """``root/repos/<owner>/<name>`` and ``root/feed.json`` (reused when already built from the same mirrors'
    commits); returns (feed path, entries, corpus description)."""
    mirrors = mirrors or default_mirrors()
    found = {r: find_mirror(mirrors, r) for r in repos}
    missing = [r for r, m in found.items() if m is None]
    if missing:
        raise MirrorMissing(
            f"{len(missing)} of the real-corpus repositories are not under {mirrors}: "
            f"{', '.join(missing)}; get them as bench/README.md says (Real repositories)"
        )
    heads = {r: _git("-C", str(m), "rev-parse", "HEAD") for r, m in found.items() if m}
    wanted = {"version": CORPUS_VERSION, "copies": copies, "heads": heads}
    marker = root / "corpus.json"
    if marker.exists() and json.loads(marker.read_text())["params"] == wanted:
        desc = json.loads(marker.read_text())
        return root / "feed.json", json.loads((root / "feed.json").read_text()), desc
    tips = root / "tips.json"  # the reduced repositories depend on the heads only: another size reuses them
    same_tips = tips.exists() and json.loads(tips.read_text())["params"] == {**wanted, "copies": None}
    infos: dict[str, dict[str, Any]] = json.loads(tips.read_text())["repos"] if same_tips else {}
    for stale in (
        ["repos", "feed.json", "corpus.json"]
        if same_tips
        else ["repos", "tips", "feed.json", "corpus.json", "tips.json"]
    ):
        path = root / stale
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    if not same_tips:
        (root / "tips").mkdir(parents=True)
        for full in repos:
            owner, name = full.split("/")
            dest = root / "tips" / owner / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            infos[full] = {"source": full, **_reduce(found[full], dest)}  # type: ignore[arg-type]
        tips.write_text(json.dumps({"params": {**wanted, "copies": None}, "repos": infos}, indent=1), encoding="utf-8")
    entries = []
    for copy in range(copies):
        for full in repos:
            owner, name = full.split("/")
            served = owner if copy == 0 else f"{owner}-copy{copy}"
            link = root / "repos" / served / name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to((root / "tips" / owner / name).resolve())
            entries.append(feed_entry(served, name, infos[full]))
    (root / "feed.json").write_text(json.dumps(entries, indent=1), encoding="utf-8")
    desc = {
        "params": wanted,
        "repos": infos,
        "served": len(entries),
        "files": sum(i["files"] for i in infos.values()) * copies,
        "bytes": sum(i["bytes"] for i in infos.values()) * copies,
    }
    marker.write_text(json.dumps(desc, indent=1), encoding="utf-8")
    return root / "feed.json", entries, desc
