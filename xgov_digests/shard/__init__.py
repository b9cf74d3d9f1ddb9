"""One shard's run: clone and digest each repo of its manifest, ``workers`` at a time (``run``), reuse
the digest of a repo that has not changed (``cache``, local or S3), show progress (``progress``), and write one
stats row per repo (``stats``: the schema of every stats file, which ``results`` and ``publish`` read). The
``shard`` stage runs it. It may import ``core``, ``feed``, ``clone`` and ``digest``.
"""
