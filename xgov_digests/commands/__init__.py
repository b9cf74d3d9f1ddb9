"""The installed command ``xgov-digests`` (``[project.scripts]``), the one entry point of every verb: one module per
verb, named like the verb, each adding its parser, calling its operation and printing the outcome, the way DVC pairs
``dvc/commands/<verb>.py`` with ``dvc/repo/<operation>.py``. The operation is in ``operations`` where the work goes
through ``dvc`` (``repro`` and ``check_remote`` under the verb's name; ``scaleout`` for the scale-out verbs), else in
the wing that does it (``publish``, ``results.plots``, ``shard.cache``). ``main`` builds the parser and is the
one place an error (``core.errors.XgovError``, the base of every error the library reports) becomes an exit code
and one line. The
Makefile's verbs are one-line aliases of these. It may import ``core``, ``schemas``, ``dvcfiles``, ``feed``, ``shard``,
``results``, ``publish`` and ``operations``.
"""
