"""A checkout's digest, byte-identical to stock gitingest's ``tree + "\n" + content`` and built in one pass:
ignore-pattern matching (``patterns``), reading ignore files safely (``ignore_files``), the patterns and order a
checkout's names alone decide (``rules``, importable without gitingest: the clone plans with it in the shard's
process), a file's text (``content``), the tree and its limits (``walk``), our header and the cut (``format``), the
digest (``build``), a digest per child process killed at ``ingest.digest_timeout`` (``budget``), what those
processes' fork server imports (``server_preload``: the walk with only the parts of gitingest it runs), and the format
and gitingest versions that are part of the digest cache's fingerprint (``version``, importable without gitingest), a
digest's token count (``tokens``), and the wing's errors (``errors``, importable without gitingest: the shard
catches them by type before it has loaded the digest code). It may import ``core``.

gitingest compiles a ``PathSpec`` of ~140 patterns for every path it visits, which is ~95% of its run time: here the
patterns are compiled once per checkout, with the same pattern classes and the same pattern order (a set built by
the same operations, so negations resolve alike), and matched per path segment where that is exact. A file is read
once and files after the cap are never opened, so memory stays at about the cap whatever the repository's size.
``tests/unit/digest/test_walk.py`` compares the result with stock gitingest byte for byte on varied trees.
"""
