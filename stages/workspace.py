"""Scratch workspaces: a copy of the pipeline in its own git repo (for the demo, the tests and the benchmarks)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
PIPELINE_FILES = ("stages", "dvc.yaml", "params.yaml", ".dvcignore", ".dvc/config", ".dvc/.gitignore", ".gitignore")


def set_params(params_file: Path, overrides: dict[str, dict[str, Any]]) -> None:
    """Update keys of params.yaml section by section, keeping its comments and order."""
    yaml = YAML()
    data = yaml.load(params_file.read_text(encoding="utf-8"))
    for section, values in overrides.items():
        for key, value in values.items():
            data[section][key] = value
    with params_file.open("w", encoding="utf-8") as fh:
        yaml.dump(data, fh)


def git_commit(path: Path, message: str) -> None:
    ident = ["-c", "user.email=pipeline@example.invalid", "-c", "user.name=pipeline"]
    subprocess.run(["git", "-C", str(path), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(path), *ident, "commit", "-q", "--allow-empty", "-m", message], check=True)


def create_workspace(dest: Path, overrides: dict[str, dict[str, Any]] | None = None) -> Path:
    """Copy the pipeline's files to ``dest``, apply params ``overrides``, and commit it all in a new git repo."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in PIPELINE_FILES:
        src, dst = ROOT / item, dest / item
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    subprocess.run(["git", "init", "-q", "-b", "main", str(dest)], check=True)
    if overrides:
        set_params(dest / "params.yaml", overrides)
    git_commit(dest, "workspace")
    return dest
