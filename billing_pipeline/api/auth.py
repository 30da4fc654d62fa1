"""Bearer tokens mapped to accountant ids.

The tokens file (BILLING_API_TOKENS, default `data/api-tokens.json`) is a JSON object
`{"<sha256 hex of the token>": "<accountant_id>", ...}`: it stores hashes, never tokens. A presented token is
hashed and compared with every stored hash in constant time (`hmac.compare_digest`, no early exit), so neither
the answer nor its timing says how close a guess was. The file is re-read when it changes, so issuing or revoking
a token needs no restart. `python -m billing_pipeline.api issue-token <accountant_id>` issues one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import threading
from pathlib import Path

DEFAULT_TOKENS_FILE = "data/api-tokens.json"
TOKEN_PREFIX = "bpt_"
_HASH = re.compile(r"^[0-9a-f]{64}$")
RESERVED_IDS = {"unattributed", "total"}  # rows of the warehouse that are not a tenant


class TokensFileError(Exception):
    """The tokens file exists but is not valid."""


def tokens_path() -> str:
    return os.environ.get("BILLING_API_TOKENS") or DEFAULT_TOKENS_FILE


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_tokens(text: str, source: str) -> dict[str, str]:
    try:
        document = json.loads(text)
    except ValueError as error:
        raise TokensFileError(f"{source}: not JSON ({error})") from error
    if not isinstance(document, dict):
        raise TokensFileError(f"{source}: expected an object {{sha256-hex: accountant_id}}")
    tokens = {}
    for digest, accountant in document.items():
        if not isinstance(digest, str) or not _HASH.match(digest.lower()):
            raise TokensFileError(f"{source}: key {digest!r} is not a sha256 hex digest")
        if not isinstance(accountant, str) or not accountant or accountant in RESERVED_IDS:
            raise TokensFileError(f"{source}: invalid accountant_id for hash {digest[:8]}...")
        tokens[digest.lower()] = accountant
    return tokens


class TokenStore:
    """The tokens file, re-read whenever its modification time or size changes."""

    def __init__(self, path: str | None = None):
        self._path = path
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._tokens: dict[str, str] = {}

    @property
    def path(self) -> str:
        return self._path or tokens_path()

    def tokens(self) -> dict[str, str]:
        path = self.path
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            return {}
        stamp = (path, stat.st_mtime_ns, stat.st_size, stat.st_ino)
        with self._lock:
            if stamp != self._stamp:
                self._tokens = parse_tokens(Path(path).read_text(encoding="utf-8"), path)
                self._stamp = stamp
            return self._tokens

    def accountant_for(self, token: str) -> str | None:
        """The accountant the token belongs to, or None. Compares against every stored hash."""
        presented = token_hash(token).encode()
        found = None
        for digest, accountant in self.tokens().items():
            if hmac.compare_digest(presented, digest.encode()):
                found = accountant
        return found


def _write_tokens(path: str, tokens: dict[str, str]) -> None:
    """Write the file atomically, readable by its owner only."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tokens-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(dict(sorted(tokens.items(), key=lambda kv: (kv[1], kv[0]))), handle, indent=2)
            handle.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read_for_update(path: str) -> dict[str, str]:
    if not os.path.exists(path):
        return {}
    return parse_tokens(Path(path).read_text(encoding="utf-8"), path)


def issue_token(accountant_id: str, path: str | None = None) -> str:
    """Create a random token for the accountant, store its hash, and return the token (shown once)."""
    if not accountant_id or accountant_id in RESERVED_IDS:
        raise ValueError(f"not an accountant id: {accountant_id!r}")
    path = path or tokens_path()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    tokens = _read_for_update(path)
    tokens[token_hash(token)] = accountant_id
    _write_tokens(path, tokens)
    return token


def revoke_tokens(accountant_id: str, path: str | None = None) -> int:
    """Remove every token of the accountant; returns how many were removed."""
    path = path or tokens_path()
    tokens = _read_for_update(path)
    kept = {digest: owner for digest, owner in tokens.items() if owner != accountant_id}
    _write_tokens(path, kept)
    return len(tokens) - len(kept)
