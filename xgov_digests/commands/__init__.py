"""The installed command ``xgov-digests`` (``[project.scripts]``): one module per verb, each adding its parser and
calling an operation of the library, the way DVC pairs ``dvc/commands/<verb>.py`` with ``dvc/repo/<operation>.py``.
``main`` builds the parser and is the one place an error (``core.errors.XgovError`` and the library's errors)
becomes an exit code and one line. The Makefile's verbs are one-line aliases of these. It may import ``core``,
``schemas``, ``feed``, ``shard``, ``results``, ``publish``, ``operations`` and ``cli``.
"""
