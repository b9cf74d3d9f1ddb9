"""One repository of the snapshot (what manifests, selection and shards pass around) and its identity key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def normalise_url(url: str) -> str:
    """Lower-case, without trailing ``/`` or ``.git``: two spellings of one repo compare equal."""
    u = url.strip().lower()
    while True:
        stripped = u.rstrip("/").removesuffix(".git")
        if stripped == u:
            return u
        u = stripped


@dataclass(frozen=True)
class Repo:
    """One repository of the snapshot: what a shard needs to clone and label it."""

    url: str
    owner: str
    name: str
    pushed_at: str | None

    @property
    def key(self) -> str:
        """The normalised URL: identity for dedupe, sorting and caching."""
        return normalise_url(self.url)

    def manifest_entry(self) -> dict[str, Any]:
        return {"url": self.url, "owner": self.owner, "name": self.name, "pushedAt": self.pushed_at}
