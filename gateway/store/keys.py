"""Virtual API keys: how they look, how they are made, and how they are hashed.

A key is ``sk-tg-<key_id>.<secret>``. The key id is public (it names the key in lists and in
the ledger); only a keyed hash (HMAC-SHA256 with a server secret) of the whole key is stored.
Without the server secret, a leaked copy of the store cannot be used to test guesses offline.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

KEY_PREFIX = "sk-tg-"
_KEY_PATTERN = re.compile(r"^sk-tg-([a-z0-9]{12})\.([A-Za-z0-9_-]{32,64})$")


@dataclass(frozen=True)
class ParsedKey:
    key_id: str
    full: str


def new_key_id() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(12))


def new_key(key_id: str | None = None) -> ParsedKey:
    """A fresh random key (43 characters of secret, 256 bits of entropy)."""
    key_id = key_id or new_key_id()
    return ParsedKey(key_id=key_id, full=f"{KEY_PREFIX}{key_id}.{secrets.token_urlsafe(32)}")


def parse_key(presented: str) -> ParsedKey | None:
    """The key's id if it is well formed; None for anything else (never raises)."""
    match = _KEY_PATTERN.match(presented)
    if match is None:
        return None
    return ParsedKey(key_id=match.group(1), full=presented)


def hash_key(server_secret: bytes, key: str) -> str:
    return hmac.new(server_secret, key.encode(), hashlib.sha256).hexdigest()


def hashes_match(stored_hash: str, presented_hash: str) -> bool:
    """Constant-time comparison, so response timing does not reveal how much of a hash matched."""
    return hmac.compare_digest(stored_hash.encode(), presented_hash.encode())


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header (OpenAI SDKs send exactly this)."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
