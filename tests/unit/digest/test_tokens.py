"""Token counts: the vocabulary from the bpe-openai wheel, checked by SHA-256, counts equal to tiktoken's own."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from xgov_digests.core.params import ParamsError, parse_params
from xgov_digests.digest.tokens import ENCODINGS, TokenError, count_tokens, load, registry, vocabulary_path

ROOT = Path(__file__).resolve().parents[3]


def tiktoken_own(name: str, cache: Path):
    """tiktoken's own ``get_encoding``, offline: its documented cache (``TIKTOKEN_CACHE_DIR``, files named by the
    SHA-1 of the vocabulary's URL) holds the wheel's file; tiktoken checks the hash itself."""
    import tiktoken
    import tiktoken.registry

    url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
    (cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(gzip.decompress(vocabulary_path(name).read_bytes()))
    tiktoken.registry.ENCODINGS.pop(name, None)
    return tiktoken.get_encoding(name)


def texts() -> list[bytes]:
    sources = sorted([*ROOT.glob("xgov_digests/**/*.py"), *ROOT.glob("docs/*.md")])
    return [p.read_bytes() for p in sources] + [
        b"a <|endoftext|> b <|endofprompt|>",  # special tokens: counted as text, never an error
        "naïve café — 日本語 😀\r\n\t".encode(),
        b"\xff\xfe broken utf-8 \xc3",
        b"",
    ]


@pytest.mark.parametrize("name", ENCODINGS)
def test_counts_equal_tiktokens_own(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    theirs = tiktoken_own(name, tmp_path)
    for text in texts():
        assert count_tokens(text, name) == len(theirs.encode_ordinary(text.decode("utf-8", "replace")))
    assert count_tokens(b"<|endoftext|>", name) > 1  # the characters, not the one special token


def test_the_vocabulary_is_the_one_tiktoken_expects(tmp_path: Path) -> None:
    _, expected = registry("o200k_base")
    assert expected.startswith("446a9538")
    assert hashlib.sha256(gzip.decompress(vocabulary_path("o200k_base").read_bytes())).hexdigest() == expected


def test_a_changed_vocabulary_is_refused_never_a_silent_count(tmp_path: Path) -> None:
    text = gzip.decompress(vocabulary_path("cl100k_base").read_bytes())
    tampered = tmp_path / "cl100k_base.tiktoken.gz"
    tampered.write_bytes(gzip.compress(text.replace(b" 100\n", b" 101\n", 1)))
    with pytest.raises(TokenError, match=r"has SHA-256 .* tiktoken expects .*reinstall bpe-openai"):
        load("cl100k_base", tampered)
    tampered.write_bytes(b"not gzip")
    with pytest.raises(TokenError, match="cannot read the cl100k_base vocabulary"):
        load("cl100k_base", tampered)
    good = tmp_path / "good.tiktoken.gz"
    good.write_bytes(gzip.compress(text))
    assert load("cl100k_base", good).encode_ordinary("hello world") == [15339, 1917]  # the check can pass


def test_an_unknown_encoding_is_named() -> None:
    with pytest.raises(TokenError, match="ingest.token_encoding must be one of"):
        registry("r50k_base")
    with pytest.raises(ParamsError, match="ingest.token_encoding must be 'o200k_base'"):
        parse_params({"feed": {"url": "x.json"}, "ingest": {"token_encoding": "gpt2"}})


def test_a_cache_entry_carries_its_count_and_an_older_one_still_decodes() -> None:
    from xgov_digests.core.repo import Repo
    from xgov_digests.shard.cache import Entry, decode_entry, encode_entry

    repo = Repo("https://github.com/o/r", "o", "r", None)
    blob = encode_entry(Entry(b"digest", "c0ffee", 1, False, tokens={"o200k_base": 2}), repo, "fp")
    assert decode_entry(blob, repo, "fp").tokens == {"o200k_base": 2}
    older = encode_entry(Entry(b"digest", "c0ffee", 1, False), repo, "fp")
    assert b'"tokens"' not in older and decode_entry(older, repo, "fp").tokens == {}
    with pytest.raises(ValueError, match="'tokens' must map encodings to integers"):
        decode_entry(blob.replace(b'"o200k_base": 2', b'"o200k_base": "2"'), repo, "fp")
