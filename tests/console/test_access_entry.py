"""Every entry path is gated: a page file run on its own (as Streamlit does for `/spend` on a fresh server,
before any session has called `st.navigation`) shows the password form and nothing of the page until the
password is entered, then the page itself, inside the same shell (layout, sidebar) as the console's root."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from core.access import hash_password
from core.config import PROJECT_ROOT, Settings

PASSWORD = "let me in please"

# Each page file and one thing only that page shows once unlocked.
PAGES = {
    "pages/home.py": ("metric", "Spent this month"),
    "pages/preview.py": ("title", "Preview a message"),
    "pages/batches.py": ("title", "Batches"),
    "pages/review.py": ("title", "Review queue"),
    "pages/experiments.py": ("title", "Experiments"),
    "pages/experiment_new.py": ("title", "New experiment"),
    "pages/experiment_variants.py": ("title", "Variants"),
    "pages/replies.py": ("title", "Replies"),
    "pages/spend.py": ("title", "Spend"),
    "pages/scenarios.py": ("title", "Scenarios"),
    "pages/settings.py": ("title", "Settings"),
}

# What the locked console may show: the login form and nothing else.
LOGIN_ELEMENTS = {"title", "text_input", "button", "form", "error"}


def _walk(node: Any) -> Iterator[Any]:
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _walk(child)


def _element_types(at: AppTest) -> list[str]:
    return [n.type for n in _walk(at._tree) if not hasattr(n, "children") or n.type == "form"]


def _assert_locked(at: AppTest) -> None:
    assert not at.exception
    types = _element_types(at)
    assert set(types) <= LOGIN_ELEMENTS, f"page content before unlock: {sorted(set(types) - LOGIN_ELEMENTS)}"
    assert [t.value for t in at.title] == ["Sam Funnel cost console"]
    assert [t.label for t in at.text_input] == ["Password"]
    assert not at.get("file_uploader") and not at.get("download_button") and not at.metric
    assert not list(_walk(at.sidebar))[1:], "the sidebar stays empty before unlock"


@pytest.fixture
def locked(console_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("CONSOLE_PASSWORD_HASH", hash_password(PASSWORD, iterations=1000))
    return console_env


@pytest.mark.parametrize("path", sorted(PAGES))
def test_page_run_directly_is_gated(locked: Settings, path: str) -> None:
    at = AppTest.from_file(str(PROJECT_ROOT / path), default_timeout=60)
    at.run()
    _assert_locked(at)

    at.text_input[0].input("a wrong guess")
    at.button[0].click().run()
    _assert_locked(at)
    assert any("Wrong password" in e.value for e in at.error)

    at.text_input[0].input(PASSWORD)
    at.button[0].click().run()
    assert not at.exception
    kind, marker = PAGES[path]
    if kind == "metric":
        assert any(m.label == marker for m in at.metric)
    else:
        assert marker in [t.value for t in at.title]
    assert not at.text_input or "Password" not in [t.label for t in at.text_input]
    # The shell is the console's own: its sidebar (budget metric) is there, as when entering at the root.
    assert any(m.label == "Budget left this month" for m in at.sidebar.metric)


def test_page_run_directly_in_open_mode_shows_banner_and_page(console_env: Settings) -> None:
    at = AppTest.from_file(str(PROJECT_ROOT / "pages/spend.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert any("Open console" in w.value for w in at.sidebar.warning)
    assert "Spend" in [t.value for t in at.title]


def test_root_and_direct_page_share_the_shell(locked: Settings) -> None:
    """Entering at the root and switching to Spend, or entering at Spend, gives the same sidebar."""
    def unlocked(at: AppTest) -> AppTest:
        at.run()
        at.text_input[0].input(PASSWORD)
        at.button[0].click().run()
        return at

    root = unlocked(AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60))
    root.switch_page("pages/spend.py").run()
    direct = unlocked(AppTest.from_file(str(PROJECT_ROOT / "pages/spend.py"), default_timeout=60))
    assert not root.exception and not direct.exception
    assert "Spend" in [t.value for t in root.title] and "Spend" in [t.value for t in direct.title]
    assert [n.type for n in _walk(root.sidebar)] == [n.type for n in _walk(direct.sidebar)]


OIDC = {"redirect_uri": "http://127.0.0.1:8501/oauth2callback", "cookie_secret": "not a secret",
        "client_id": "console", "client_secret": "x",
        "server_metadata_url": "https://login.example.com/.well-known/openid-configuration"}


def _oidc(path: str, user: dict[str, Any]) -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / path), default_timeout=60)
    at.secrets["auth"] = OIDC
    at.user = user
    return at.run()


@pytest.mark.parametrize("path", ["pages/spend.py", "pages/batches.py", "pages/review.py"])
def test_oidc_login_comes_first_on_every_entry_path(
        console_env: Settings, monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    monkeypatch.setenv("CONSOLE_ALLOWED_EMAILS", "ana@example.com")
    for user, allowed in (({"is_logged_in": False}, ["Log in"]),
                          ({"is_logged_in": True, "email": "eve@example.com"}, ["Log out"])):
        at = _oidc(path, user)
        assert not at.exception
        types = set(_element_types(at))
        assert types <= {"title", "text", "button", "error"}, f"page content for {user}: {sorted(types)}"
        assert [b.label for b in at.button] == allowed
        assert not list(_walk(at.sidebar))[1:]

    at = _oidc(path, {"is_logged_in": True, "email": "Ana@example.com"})
    assert not at.exception
    assert PAGES[path][1] in [t.value for t in at.title]
    assert "Signed in as Ana@example.com" in [t.value for t in at.sidebar.text]


def test_every_page_file_is_in_the_navigation_and_gated_here() -> None:
    """A new file in pages/ must join console.PAGE_TABLE (else only Streamlit's fallback reaches it) and the
    table above (so the gate test runs it directly)."""
    import console

    files = sorted(str(p.relative_to(PROJECT_ROOT)) for p in (PROJECT_ROOT / "pages").glob("*.py"))
    assert sorted(path for path, *_ in console.PAGE_TABLE) == files
    assert sorted(PAGES) == files
