"""Access control: password hashes, allow-lists, the mode decision, and the gate as a user meets it."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core.access import access_mode, allowed_emails, email_allowed, hash_password, verify_password
from core.config import PROJECT_ROOT, Settings


def test_password_hash_round_trip() -> None:
    encoded = hash_password("correct horse", iterations=1000)
    assert encoded.startswith("pbkdf2_sha256$1000$") and "correct horse" not in encoded
    assert verify_password("correct horse", encoded)
    assert not verify_password("correct hors", encoded)
    assert not verify_password("x", "garbage")
    with pytest.raises(ValueError, match="8 characters"):
        hash_password("short")


def test_allow_list() -> None:
    allow = allowed_emails("ana@example.com; @team.example.org")
    assert email_allowed("ANA@example.com", allow)
    assert email_allowed("bo@team.example.org", allow)
    assert not email_allowed("eve@example.com", allow)
    assert not email_allowed(None, allow)
    assert not email_allowed("ana@example.com", set()), "login without an allow-list admits nobody"


def test_mode() -> None:
    assert access_mode({"auth": {"redirect_uri": "x"}}, {}) == "oidc"
    assert access_mode({}, {"CONSOLE_PASSWORD_HASH": "pbkdf2_sha256$1$a$b"}) == "password"
    assert access_mode({"access": {"password_hash": "pbkdf2_sha256$1$a$b"}}, {}) == "password"
    assert access_mode({}, {}) == "open"


def test_open_console_shows_a_banner(console_env: Settings) -> None:
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert any("Open console" in w.value for w in at.sidebar.warning)


def test_password_gate(console_env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSOLE_PASSWORD_HASH", hash_password("let me in please", iterations=1000))
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert not at.metric, "nothing of the console shows before the password"
    at.text_input[0].input("wrong guess!")
    at.button[0].click().run()
    assert any("Wrong password" in e.value for e in at.error)
    at.text_input[0].input("let me in please")
    at.button[0].click().run()
    assert not at.exception
    assert any(m.label == "Spent this month" for m in at.metric)
    assert not any("Open console" in w.value for w in at.sidebar.warning)


def test_unlocked_sessions_bind_a_session_to_its_browser() -> None:
    from core.access import UnlockedSessions

    reg = UnlockedSessions()
    reg.grant("s1", "browser-a")
    reg.grant("s2", None)  # served without serve.py: no client cookie
    assert reg.may_upload("s1", "browser-a")
    assert not reg.may_upload("s1", "browser-b"), "another browser cannot use an unlocked session's id"
    assert not reg.may_upload("s1", None) and not reg.may_upload("s2", None)
    assert not reg.may_upload("s3", "browser-a"), "a session that never unlocked"
    live = {"s1", "s2"}
    assert reg.may_download("browser-a", live.__contains__)
    assert not reg.may_download("browser-b", live.__contains__) and not reg.may_download(None, live.__contains__)
    live.discard("s1")
    assert not reg.may_download("browser-a", live.__contains__), "a browser whose unlocked session ended"
    assert "s1" not in reg
    reg.revoke("s2")
    assert "s2" not in reg and len(reg) == 0
    reg.grant("s4", "c")
    reg.grant("s5", "d")
    reg.prune({"s5"}.__contains__)
    assert "s4" not in reg and "s5" in reg
