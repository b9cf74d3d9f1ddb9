"""Digests of local checkouts: byte-identical to stock gitingest's ``tree + "\\n" + content``, built in one pass.

Modules: :mod:`.patterns` (ignore-pattern matching), :mod:`.ignore_files` (reading ignore files safely),
:mod:`.content` (a file's text), :mod:`.walk` (the tree and its limits), :mod:`.format` (header and cut),
:mod:`.build` (the digest), :mod:`.budget` (a digest per child process, killed at ``ingest.digest_timeout``).

gitingest compiles a ``PathSpec`` of ~140 patterns for every path it visits, which is ~95% of its run time: here the
patterns are compiled once per checkout, with the same pattern classes and the same pattern order (a set built by
the same operations, so negations resolve alike), and matched per path segment where that is exact. A file is read
once and files after the cap are never opened, so memory stays at about the cap whatever the repository's size.
``tests/test_digest_fast.py`` compares the result with stock gitingest byte for byte on varied trees.
"""

from xgov_digests.digest.build import Digest, ingest_tree, make_digest
from xgov_digests.digest.format import FORMAT_VERSION, GITINGEST_VERSION, Header, render_header, truncate
from xgov_digests.digest.patterns import IgnoreSpec
from xgov_digests.digest.walk import Limits, ignore_spec

__all__ = [
    "FORMAT_VERSION", "GITINGEST_VERSION", "Digest", "Header", "IgnoreSpec", "Limits", "ignore_spec", "ingest_tree",
    "make_digest", "render_header", "truncate",
]  # fmt: skip
