"""Who may use the console: OpenID Connect login with an e-mail allow-list, else a password, else open.

The decision lives here; the console only draws the widgets. Passwords are never stored: the configuration
holds a PBKDF2-SHA256 hash (`python -m core hash-password` makes one) and verification is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

PBKDF2_ITERATIONS = 310_000
SCHEME = "pbkdf2_sha256"


def hash_password(password: str, *, salt: str | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    if len(password) < 8:
        raise ValueError("use a password of at least 8 characters")
    salt = salt or secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations).hex()
    return f"{SCHEME}${iterations}${salt}${digest}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, iterations, salt, digest = encoded.split("$", 3)
        rounds = int(iterations)
    except ValueError:
        return False
    if scheme != SCHEME or rounds < 1:
        return False
    candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), rounds).hex()
    return hmac.compare_digest(candidate, digest)


def allowed_emails(value: Any) -> set[str]:
    if isinstance(value, str):
        items: Iterable[Any] = value.replace(";", ",").split(",")
    elif isinstance(value, Iterable):
        items = value
    else:
        items = []
    return {str(v).strip().casefold() for v in items if str(v).strip()}


def email_allowed(email: str | None, allow_list: set[str]) -> bool:
    """An empty allow-list admits nobody: configuring login without naming who may enter is a mistake."""
    if not email:
        return False
    email = email.strip().casefold()
    domain = email.rsplit("@", 1)[-1]
    return email in allow_list or f"@{domain}" in allow_list


def access_mode(secrets_map: Mapping[str, Any], env: Mapping[str, str]) -> str:
    """'oidc' when an [auth] section is configured, 'password' when a password hash is, otherwise 'open'."""
    if isinstance(secrets_map.get("auth"), Mapping) and secrets_map["auth"]:
        return "oidc"
    if password_hash(secrets_map, env):
        return "password"
    return "open"


def password_hash(secrets_map: Mapping[str, Any], env: Mapping[str, str]) -> str:
    access = secrets_map.get("access") if isinstance(secrets_map.get("access"), Mapping) else {}
    return str(env.get("CONSOLE_PASSWORD_HASH") or access.get("password_hash") or "")


CLIENT_COOKIE = "sam_console_client"  # set by serve.py on every browser; binds HTTP requests to console sessions


class UnlockedSessions:
    """The console sessions (Streamlit session ids) that passed the gate, with the browser each belongs to.

    The gate grants a session on every run it lets through (recording the browser's `CLIENT_COOKIE`, read from
    the websocket handshake) and revokes it on a run it stops. The HTTP layer (`serve.py`) asks it whether an
    upload comes from an unlocked session's own browser, and whether a download is asked for by a browser
    with a live unlocked session. Thread-safe: script threads write, the server's event loop reads.
    """

    def __init__(self) -> None:
        self._client_of: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def grant(self, session_id: str, client: str | None) -> None:
        with self._lock:
            self._client_of[session_id] = client or None

    def revoke(self, session_id: str) -> None:
        with self._lock:
            self._client_of.pop(session_id, None)

    def __contains__(self, session_id: object) -> bool:
        with self._lock:
            return session_id in self._client_of

    def may_upload(self, session_id: str, client: str | None) -> bool:
        """An upload for an unlocked session, sent by that session's browser (never by a browser without one)."""
        with self._lock:
            return bool(client) and session_id in self._client_of and self._client_of[session_id] == client

    def __len__(self) -> int:
        with self._lock:
            return len(self._client_of)

    def prune(self, is_live: Callable[[str], bool]) -> None:
        """Forget the sessions that have ended (Streamlit has no hook for the end of a session)."""
        with self._lock:
            ended = [sid for sid in self._client_of if not is_live(sid)]
            for sid in ended:
                del self._client_of[sid]

    def may_download(self, client: str | None, is_live: Callable[[str], bool]) -> bool:
        """A browser that holds a live unlocked session; sessions that ended are forgotten on the way."""
        if not client:
            return False
        with self._lock:
            holders = [sid for sid, c in self._client_of.items() if c == client]
        for sid in holders:
            if is_live(sid):
                return True
            self.revoke(sid)
        return False


UNLOCKED = UnlockedSessions()
