"""Bearer tokens: a tenant's (one accountant's billing) or the data team's (admin: every tenant, read-only).

The tokens file (BILLING_API_TOKENS, default `data/api-tokens.json`) stores hashes, never tokens:

    {"tokens": {"<sha256 hex of the token>": {"id": "tok_…", "scope": "tenant" | "admin",
                "accountant_id": "acct-0001" | null, "label": "…", "created_at": "…Z", "expires_at": "…Z"}}}

Each token has a public id (listed and revoked by it; the id says nothing about the secret) and an expiry
(`issue-token --days`, default 90). A presented token is hashed and compared with every stored hash in constant
time (`hmac.compare_digest`, no early exit). The file is re-read when it changes, so issuing or revoking needs no
restart. A file of the first format (`{"<sha256>": "<accountant_id>"}`) is still read; its tokens have no expiry
until the file is next written (issue or revoke), which gives them the default 90 days from then.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TOKENS_FILE = "data/api-tokens.json"
TOKEN_PREFIX = {"tenant": "bpt_", "admin": "bpa_"}
DEFAULT_DAYS = 90
MAX_DAYS = 3660
SCOPES = ("tenant", "admin")
_HASH = re.compile(r"^[0-9a-f]{64}$")
RESERVED_IDS = {"unattributed", "total", "unknown"}  # rows of the warehouse that are not a tenant
MAX_ID_LENGTH = 128


class TokensFileError(Exception):
    """The tokens file exists but is not valid."""


class InvalidRequest(ValueError):
    """A token command that cannot be done; the message is one line for the operator."""


def tokens_path() -> str:
    return os.environ.get("BILLING_API_TOKENS") or DEFAULT_TOKENS_FILE


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _utc(text: str | None) -> dt.datetime | None:
    """A stored time; one written without a zone is UTC (as every time of the project), never the machine's."""
    if text is None:
        return None
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc)


def _text(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def check_accountant_id(accountant_id: str) -> str:
    """The id a tenant token may carry, or InvalidRequest saying why not: not empty, no surrounding whitespace or
    control characters, not a row name of the warehouse (`unattributed`, `total`, `unknown`, in any case)."""
    if not accountant_id or not accountant_id.strip():
        raise InvalidRequest("not an accountant id: it is empty")
    if accountant_id != accountant_id.strip():
        raise InvalidRequest(f"not an accountant id: {accountant_id!r} has whitespace around it")
    if any(unicodedata.category(c).startswith("C") for c in accountant_id):
        raise InvalidRequest(f"not an accountant id: {accountant_id!r} contains control characters")
    if accountant_id.casefold() in RESERVED_IDS:
        raise InvalidRequest(f"not an accountant id: {accountant_id!r} is reserved (a row of the statements, "
                             "not a tenant)")
    if len(accountant_id) > MAX_ID_LENGTH:
        raise InvalidRequest(f"not an accountant id: longer than {MAX_ID_LENGTH} characters")
    return accountant_id


@dataclass(frozen=True)
class Grant:
    """What a token gives: its id, scope, accountant (tenant tokens) and expiry."""

    id: str
    scope: str
    accountant_id: str | None
    label: str
    created_at: str | None
    expires_at: str | None

    def expired(self, now: dt.datetime | None = None) -> bool:
        expires = _utc(self.expires_at)
        return expires is not None and (now or dt.datetime.now(dt.timezone.utc)) >= expires

    def listing(self) -> dict:
        return {"id": self.id, "scope": self.scope, "accountant_id": self.accountant_id, "label": self.label,
                "created_at": self.created_at, "expires_at": self.expires_at}


def _legacy_id(digest: str) -> str:
    # derived from the hash, one way: the listing never shows the hash itself
    return "tok_" + hashlib.sha256(("legacy:" + digest).encode()).hexdigest()[:12]


def _pairs(pairs: list[tuple]) -> dict:
    """A JSON object that holds no token hash twice (a repeated key, or one in another case): json.loads would keep
    the last, giving the token to whichever tenant a hand-merged file lists last."""
    digests = [key.lower() for key, _value in pairs if _HASH.match(key.lower())]
    for digest in sorted({d for d in digests if digests.count(d) > 1}):
        raise TokensFileError(f"token hash {digest[:8]}... is listed twice")
    return dict(pairs)


def parse_tokens(text: str, source: str) -> dict[str, Grant]:
    try:
        document = json.loads(text, object_pairs_hook=_pairs)
    except TokensFileError as error:
        raise TokensFileError(f"{source}: {error}") from None
    except ValueError as error:
        raise TokensFileError(f"{source}: not JSON ({error})") from error
    if not isinstance(document, dict):
        raise TokensFileError(f"{source}: expected an object")
    entries = document["tokens"] if isinstance(document.get("tokens"), dict) else document
    grants = {}
    for digest, entry in entries.items():
        if not isinstance(digest, str) or not _HASH.match(digest.lower()):
            raise TokensFileError(f"{source}: key {digest!r} is not a sha256 hex digest")
        if isinstance(entry, str):  # the first format: hash -> accountant id, no expiry
            entry = {"id": _legacy_id(digest), "scope": "tenant", "accountant_id": entry, "label": "",
                     "created_at": None, "expires_at": None}
        elif isinstance(entry, dict) and not isinstance(entry.get("expires_at"), str):
            # only the first format's tokens lack an expiry: a hand-edited `null` must not make one live forever
            raise TokensFileError(f"{source}: token entry {digest[:8]}... has no expires_at")
        try:
            grant = Grant(id=str(entry["id"]), scope=entry["scope"], accountant_id=entry.get("accountant_id"),
                          label=str(entry.get("label") or ""), created_at=entry.get("created_at"),
                          expires_at=entry.get("expires_at"))
            _utc(grant.expires_at)
            _utc(grant.created_at)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise TokensFileError(f"{source}: token entry {digest[:8]}... is malformed") from None
        if grant.scope not in SCOPES:
            raise TokensFileError(f"{source}: token {grant.id} has an unknown scope {grant.scope!r}")
        if grant.scope == "tenant":
            try:
                check_accountant_id(grant.accountant_id if isinstance(grant.accountant_id, str) else "")
            except InvalidRequest:
                raise TokensFileError(f"{source}: invalid accountant_id for token {grant.id}") from None
        elif grant.accountant_id is not None:
            raise TokensFileError(f"{source}: admin token {grant.id} must not name an accountant")
        grants[digest.lower()] = grant
    return grants


class TokenStore:
    """The tokens file, re-read whenever its modification time or size changes."""

    def __init__(self, path: str | None = None):
        self._path = path
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._grants: dict[str, Grant] = {}

    @property
    def path(self) -> str:
        return self._path or tokens_path()

    def grants(self) -> dict[str, Grant]:
        path = self.path
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            return {}
        stamp = (path, stat.st_mtime_ns, stat.st_size, stat.st_ino)
        with self._lock:
            if stamp != self._stamp:
                self._grants = parse_tokens(Path(path).read_text(encoding="utf-8"), path)
                self._stamp = stamp
            return self._grants

    def grant_for(self, token: str) -> Grant | None:
        """The token's grant (expired or not), or None. Compares against every stored hash."""
        presented = token_hash(token).encode()
        found = None
        for digest, grant in self.grants().items():
            if hmac.compare_digest(presented, digest.encode()):
                found = grant
        return found

    def accountant_for(self, token: str) -> str | None:
        """The accountant of a valid (unexpired) tenant token, or None."""
        grant = self.grant_for(token)
        if grant is None or grant.scope != "tenant" or grant.expired():
            return None
        return grant.accountant_id


def _write_tokens(path: str, grants: dict[str, Grant]) -> None:
    """Write the file atomically, readable by its owner only."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    ordered = sorted(grants.items(), key=lambda kv: (kv[1].scope, kv[1].accountant_id or "", kv[1].id))
    document = {"tokens": {digest: grant.listing() for digest, grant in ordered}}
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tokens-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
            handle.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read_for_update(path: str, now: dt.datetime) -> dict[str, Grant]:
    if not os.path.exists(path):
        return {}
    grants = parse_tokens(Path(path).read_text(encoding="utf-8"), path)
    # tokens of the first format get the default expiry from now on
    default_expiry = _text(now + dt.timedelta(days=DEFAULT_DAYS))
    return {digest: grant if grant.expires_at else Grant(**{**grant.listing(), "expires_at": default_expiry})
            for digest, grant in grants.items()}


def issue_token(accountant_id: str | None, path: str | None = None, *, days: int = DEFAULT_DAYS,
                scope: str = "tenant", label: str = "", now: dt.datetime | None = None) -> str:
    """Create a random token, store its hash and grant, and return the token (shown once). A tenant token needs
    the accountant id; an admin token (scope='admin') names none."""
    if scope not in SCOPES:
        raise InvalidRequest(f"unknown scope {scope!r} (tenant or admin)")
    if scope == "tenant":
        check_accountant_id(accountant_id or "")
    elif accountant_id:
        raise InvalidRequest("an admin token reads every tenant: it takes no accountant id")
    if not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise InvalidRequest(f"--days must be a whole number of days from 1 to {MAX_DAYS}, got {days}")
    now = now or dt.datetime.now(dt.timezone.utc)
    path = path or tokens_path()
    token = TOKEN_PREFIX[scope] + secrets.token_urlsafe(32)
    grants = _read_for_update(path, now)
    grants[token_hash(token)] = Grant(
        id="tok_" + secrets.token_hex(6), scope=scope, accountant_id=accountant_id if scope == "tenant" else None,
        label=label, created_at=_text(now), expires_at=_text(now + dt.timedelta(days=days)))
    _write_tokens(path, grants)
    return token


def list_tokens(path: str | None = None) -> list[Grant]:
    """Every token's grant (id, scope, accountant, dates): never a token, never a hash."""
    path = path or tokens_path()
    if not os.path.exists(path):
        return []
    grants = parse_tokens(Path(path).read_text(encoding="utf-8"), path).values()
    return sorted(grants, key=lambda g: (g.scope, g.accountant_id or "", g.created_at or "", g.id))


def revoke_tokens(accountant_id: str, path: str | None = None) -> int:
    """Remove every token of the accountant; returns how many were removed. InvalidRequest when it holds none: an
    operator cutting a tenant off who typed its id as a tag shows it (`ACCT-0001`, a pasted trailing space) must not
    be told it worked while the tenant's tokens still do; the ids that read the same and hold tokens are named."""
    from billing_pipeline.resources.tenant_registry import id_skeleton

    path = path or tokens_path()
    holders = {grant.accountant_id for grant in list_tokens(path) if grant.scope == "tenant"}
    if accountant_id not in holders:
        alike = sorted(a for a in holders if id_skeleton(a) == id_skeleton(accountant_id))
        held = f" (tokens are held by {', '.join(map(repr, alike))}, which reads the same)" if alike else ""
        raise InvalidRequest(f"no token of {accountant_id!r} in {path}: revoked nothing{held}")
    return _revoke(lambda grant: grant.scope == "tenant" and grant.accountant_id == accountant_id, path)


def revoke_token_id(token_id: str, path: str | None = None) -> int:
    """Remove the token with this id (tenant or admin); returns 1, or 0 when there is none."""
    return _revoke(lambda grant: grant.id == token_id, path)


def _revoke(match, path: str | None) -> int:
    path = path or tokens_path()
    grants = _read_for_update(path, dt.datetime.now(dt.timezone.utc))
    kept = {digest: grant for digest, grant in grants.items() if not match(grant)}
    _write_tokens(path, kept)
    return len(grants) - len(kept)
