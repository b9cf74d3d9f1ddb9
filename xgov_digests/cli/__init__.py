"""The commands of the Makefile and the user that are not DVC stages, each run as
``python -m xgov_digests.cli.<name>``: params edits (``set_params``, ``set_shards``), what ``make repro`` hands to
``make -j`` (``shard_stages``), the process group around each ``dvc`` call (``group``) and DVC's hints it drops
(``quiet_dvc``), the remote check before push and pull (``check_remote``), ``make retry`` (``retry``), the
scale-out targets (``scaleout``), ``make plots`` (``plots``) and ``make publish`` (``publish``). Each parses its
arguments, calls the wings and exits 2 with one line on bad input; nothing imports it. It may import ``core``,
``schemas``, ``feed``, ``clone``, ``digest``, ``shard``, ``results``, ``publish`` and ``operations``.

``python -m xgov_digests.cli.<name>`` imports this package first: it installs the hook that names a wrong
interpreter in one line (``core.interpreter``).
"""

from xgov_digests.core.interpreter import install_hook

install_hook()
