"""The commands ``dvc.yaml`` runs, one module per stage (``fetch``, ``shard``, ``aggregate``): each parses its
arguments, calls the library's wings and writes the stage's outputs; the code a stage imports is what its
``dvc.yaml`` deps list. The other commands are the verbs of ``xgov_digests.commands``. It may import ``core``,
``schemas``, ``dvcfiles``, ``feed``, ``clone``, ``digest``, ``shard`` and ``results``.

``python -m stages.<name>`` imports this package first: it installs the hook that names a wrong interpreter in one
line (``xgov_digests.core.interpreter``), which is what a global or pipx ``dvc`` meets.
"""

from xgov_digests.core.interpreter import install_hook

install_hook()
