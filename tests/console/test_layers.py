"""The console's layering rules, checked on the source: the engine never imports Streamlit, no page renders
HTML, Markdown is only ever a literal the page wrote, and other people's words are escaped before a widget
that renders Markdown shows them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from console.text import plain
from core.config import PROJECT_ROOT

CORE = sorted((PROJECT_ROOT / "core").rglob("*.py"))
CONSOLE = sorted([*(PROJECT_ROOT / "pages").glob("*.py"), *(PROJECT_ROOT / "console").glob("*.py"),
                  PROJECT_ROOT / "app.py"])


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_core_never_imports_streamlit(path: Path) -> None:
    for node in ast.walk(_tree(path)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        assert not any(n == "streamlit" or n.startswith("streamlit.") for n in names), (
            f"{path.name}:{node.lineno} imports Streamlit; the engine must run without it")


@pytest.mark.parametrize("path", CONSOLE, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_no_page_renders_html_or_markdown_it_did_not_write(path: Path) -> None:
    for node in ast.walk(_tree(path)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        where = f"{path.name}:{node.lineno}"
        assert node.func.attr != "html", f"{where}: st.html renders HTML"
        assert not any(k.arg == "unsafe_allow_html" for k in node.keywords), f"{where}: unsafe_allow_html"
        if node.func.attr == "markdown":
            assert node.args and isinstance(node.args[0], ast.Constant), (
                f"{where}: st.markdown of a computed string; show data with st.text, st.code or a dataframe")


@pytest.mark.parametrize("text", [
    "[click](https://evil.example) now",
    "*bold* _italic_ `code` ~~gone~~",
    "costs $5 and $6",
    ":red[alarm] :material/warning:",
    "# heading | a | b |",
    "<img src=x onerror=alert(1)> back\\slash",
])
def test_plain_escapes_everything_markdown_acts_on(text: str) -> None:
    shown = plain(text)
    assert not re.search(r"(?<!\\)[`*_\[\]$<>#|~:]", shown.replace("\\\\", "")), shown
    assert re.sub(r"\\(.)", r"\1", shown) == text, "unescaped, it reads exactly as typed"


def test_plain_leaves_ordinary_words_alone() -> None:
    assert plain("anthropic/claude-sonnet-4.5 retires on 2026-11-30 (in 5 days).") == (
        "anthropic/claude-sonnet-4.5 retires on 2026-11-30 (in 5 days).")
