"""The digest format and gitingest versions: part of the digest cache's fingerprint, importable without gitingest."""

from __future__ import annotations

from importlib import metadata

# Bump when anything we write changes shape: it is part of the digest cache's fingerprint.
# 2: the truncation notice no longer carries the full length (digests stop reading at the cap).
# 3: the cut is counted after removing the checkout path; ignore files are read only inside the checkout.
# 4: once a walk limit bites, the files kept are the first in the digest's own order, not the disk's.
FORMAT_VERSION = 4
GITINGEST_VERSION = metadata.version("gitingest")
