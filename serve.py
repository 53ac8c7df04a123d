"""The console's server: `streamlit run serve.py` (what `make run` does) serves app.py behind an HTTP gate.

Why it exists: the access gate in console/shell.py stops every script run of a session that has not unlocked, but
Streamlit's HTTP routes do not run the script. Its upload route stores in memory whatever any live session
PUTs, without a limit on the number of files, and its media route serves any stored file to whoever has its
address. This module wraps the app in an ASGI middleware that:

- gives every browser a random, HttpOnly client cookie (`core.access.CLIENT_COOKIE`); the websocket handshake
  carries it, so the gate records which browser each unlocked session belongs to (`core.access.UNLOCKED`);
- refuses (403) an upload unless it names an unlocked session and comes from that session's browser, before a
  byte of the body is read, so a session that has not unlocked cannot fill the server's memory;
- caps what one unlocked session holds in uploads (stored plus in flight) at `UPLOAD_CAP_FILES` times
  `server.maxUploadSize` (413 beyond it), and wants a Content-Length (411) so the cap is known up front;
- serves `/media/` files (downloads, images) only to a browser with a live unlocked session (404 otherwise).

`streamlit run` finds the `app = st.App(...)` below by reading this file (streamlit.web.server.app_discovery)
and runs it under uvicorn; `streamlit run app.py` still works but without this gate.
"""

from __future__ import annotations

import re
import secrets
from collections import defaultdict
from http.cookies import SimpleCookie
from typing import Any

import streamlit as st
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from streamlit.runtime.pages_manager import PagesManager

from core.access import CLIENT_COOKIE, UNLOCKED

UPLOAD_CAP_FILES = 4  # an unlocked session may hold this many maximum-size uploads at once (three uploaders)

_UPLOAD = re.compile(r"(?:^|/)_stcore/upload_file/([^/]+)/[^/]+$")
_MEDIA = re.compile(r"(?:^|/)media/[^/]+$")


def _runtime() -> Any:
    from streamlit.runtime import Runtime

    return Runtime.instance()


def upload_cap_bytes() -> int:
    from streamlit import config

    return UPLOAD_CAP_FILES * int(config.get_option("server.maxUploadSize")) * 1024 * 1024


def stored_upload_bytes(session_id: str) -> int:
    """What the session's uploads hold in Streamlit's in-memory uploaded-file manager."""
    files = _runtime().uploaded_file_mgr.file_storage.get(session_id, {})
    return sum(len(rec.data) for rec in list(files.values()))


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope.get("headers", []):
        if name == wanted:
            return bytes(value).decode("latin-1")
    return None


def _client(scope: Scope) -> str | None:
    raw = _header(scope, b"cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # a malformed Cookie header names no client
        return None
    morsel = jar.get(CLIENT_COOKIE)
    return morsel.value if morsel else None


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    try:
        return max(0, int(value)) if value is not None else None
    except ValueError:
        return None


class AccessGate:
    """Pure ASGI middleware (it never reads a body, so Streamlit's own streaming size check still applies)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._in_flight: dict[str, int] = defaultdict(int)  # upload bytes being received, per session

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = _client(scope)
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        upload = _UPLOAD.search(path) if method == "PUT" else None
        if upload:
            await self._upload(upload.group(1), client, scope, receive, send)
        elif method in {"GET", "HEAD"} and _MEDIA.search(path) and not UNLOCKED.may_download(
                client, _runtime().is_active_session):
            await PlainTextResponse("File not found", status_code=404)(scope, receive, send)
        elif client is None:
            await self.app(scope, receive, self._with_client_cookie(scope, send))
        else:
            await self.app(scope, receive, send)

    @staticmethod
    def _with_client_cookie(scope: Scope, send: Send) -> Send:
        cookie = (f"{CLIENT_COOKIE}={secrets.token_urlsafe(32)}; Path=/; HttpOnly; SameSite=Strict"
                  + ("; Secure" if scope.get("scheme") == "https" else ""))

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode())]}
            await send(message)

        return sending

    async def _upload(self, session_id: str, client: str | None, scope: Scope, receive: Receive,
                      send: Send) -> None:
        if not UNLOCKED.may_upload(session_id, client):
            await PlainTextResponse("Unlock the console before uploading.", status_code=403)(scope, receive, send)
            return
        length = _content_length(scope)
        if length is None:
            await PlainTextResponse("Content-Length required", status_code=411)(scope, receive, send)
            return
        if stored_upload_bytes(session_id) + self._in_flight[session_id] + length > upload_cap_bytes():
            await PlainTextResponse("This session holds too many uploads; remove some first.",
                                    status_code=413)(scope, receive, send)
            return
        self._in_flight[session_id] += length
        try:
            await self.app(scope, receive, send)
        finally:
            self._in_flight[session_id] -= length
            if self._in_flight[session_id] <= 0:
                del self._in_flight[session_id]


# Streamlit runs the files in pages/ directly (without app.py, so without its gate) until some session has
# called st.navigation; it decides that once, when the first session starts, from whether pages/ exists. The
# console always calls st.navigation, so say so before any session starts: every run then goes through app.py.
# (The pages' own entry guard, console.enter, covers `streamlit run app.py` and tests that run a page file.)
PagesManager.uses_pages_directory = False

app = st.App("app.py", middleware=[Middleware(AccessGate)])
