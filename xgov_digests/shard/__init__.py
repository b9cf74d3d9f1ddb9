"""One shard's run: clone and digest each repo of its manifest, ``workers`` at a time (``run``), reuse
the digest of a repo that has not changed (``cache``, local or S3), show progress (``progress``), and write one
stats row per repo (in the schema of ``schemas.stats``). The ``shard`` stage runs it. It may import ``core``,
``schemas``, ``feed``, ``clone`` and ``digest``.
"""
