"""What decides a digest's bytes besides our own code: the digest format and the versions of what it is built with.

``DIGEST_VERSIONS`` names every dependency whose upgrade can change a digest: gitingest (the walk, its ignore
patterns, the notebook converter ``gitingest.utils.notebook``, the encodings it tries), pathspec (how the ignore
patterns match), the Python minor version (``fnmatch``, the codecs, the Unicode tables) and tiktoken (its
pre-tokenising pattern decides each stats row's ``tokens``; the vocabulary itself is checked by its SHA-256 in
``tokens.py``). It lives in this file,
which lies in ``xgov_digests/digest``, a dependency of the shard stage in ``dvc.yaml``: changing a version here
changes every shard's DVC key, so every shard re-runs and no run-cache entry made with other versions is restored.
The shard refuses to start in an environment that does not hold these versions (``check_environment``), so the
key never claims versions the digests were not made with; ``tests/unit/digest/test_version.py`` holds them to
``uv.lock``, the Dockerfile and the nightly workflow. They are also part of the digest cache's fingerprint.

Why not ``uv.lock`` as the dependency: it would re-run all 21,000 repos for a test tool's upgrade, it does not
record the Python version, and DVC would hash the file, not what is installed (``pip install .`` ignores it).

Importable without gitingest.
"""

from __future__ import annotations

import sys
from importlib import metadata

from xgov_digests.digest.errors import EnvironmentMismatch

# Bump when anything we write changes shape: it is part of the digest cache's fingerprint.
# 2: the truncation notice no longer carries the full length (digests stop reading at the cap).
# 3: the cut is counted after removing the checkout path; ignore files are read only inside the checkout.
# 4: once a walk limit bites, the files kept are the first in the digest's own order, not the disk's.
FORMAT_VERSION = 4

# After 'make lock UPGRADE=gitingest' (or pathspec), or moving to another Python: set the new versions here and
# commit them with uv.lock; every shard re-runs (a digest-format change: do it on its own).
DIGEST_VERSIONS = {
    "python": "3.11",
    "gitingest": "0.3.1",
    "pathspec": "1.1.1",
    "tiktoken": "0.14.0",
}
GITINGEST_VERSION = DIGEST_VERSIONS["gitingest"]
HERE = "xgov_digests/digest/version.py"


def installed_versions() -> dict[str, str | None]:
    """The versions this process runs with (None: the package is not installed)."""

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    found: dict[str, str | None] = {"python": f"{sys.version_info.major}.{sys.version_info.minor}"}
    found.update({name: version(name) for name in DIGEST_VERSIONS if name != "python"})
    return found


def check_environment(found: dict[str, str | None] | None = None) -> None:
    """Raise :class:`EnvironmentMismatch` naming each version that differs from ``DIGEST_VERSIONS`` and what to do."""
    found = installed_versions() if found is None else found
    wrong = [
        f"{name} {found.get(name) or 'not installed'} (recorded: {want})"
        for name, want in DIGEST_VERSIONS.items()
        if found.get(name) != want
    ]
    if wrong:
        raise EnvironmentMismatch(
            f"this environment has {', '.join(wrong)}; {HERE} records the versions the digests are made with and "
            "that DVC keys the shards by, so digests made here would be filed under the wrong versions. Run "
            "'make install' (installs uv.lock's versions) with Python "
            f"{DIGEST_VERSIONS['python']}; after a deliberate upgrade ('make lock UPGRADE=<name>'), set the new "
            f"versions in {HERE} and commit them with uv.lock (every shard re-runs)"
        )
