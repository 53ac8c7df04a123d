"""The README tells the truth about settings, commands and pages (in the style of datasette's test_docs.py).

Every environment variable the product reads appears in the README's settings table, and nothing in the
table is a variable nobody reads; every CLI verb (walked from the argparse parser, subcommands included)
appears in the README's command list, and the list names no verb that does not exist; every console page has
a row in its Pages table. A colleague who adds a setting, a verb or a page without documenting it gets a
failing test naming it.
"""

from __future__ import annotations

import argparse
import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.__main__ import build_parser
from core.config import PROJECT_ROOT, Settings

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
# Where the product (not its tests or benchmarks) reads its environment.
PRODUCT = [PROJECT_ROOT / "core", PROJECT_ROOT / "console", PROJECT_ROOT / "pages", PROJECT_ROOT / "app.py",
           PROJECT_ROOT / "serve.py"]
# Names a mapping of settings goes by where it is read: os.environ, load_settings' merged `source`, an `env`.
_ENV_NAMES = {"environ", "source", "env", "getenv"}
_VARIABLE = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")


def _section(title: str) -> str:
    """The README's text from a `## title` heading to the next heading of the same level."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.S | re.M)
    assert match, f"the README has no '## {title}' section"
    return match.group(1)


def _python_files() -> Iterator[Path]:
    for root in PRODUCT:
        yield from ([root] if root.is_file() else sorted(root.rglob("*.py")))


def _env_key(node: ast.AST) -> str | None:
    """The variable name if `node` reads one: `X.get("NAME", …)`, `X["NAME"]`, `os.getenv("NAME")`, where X is
    a mapping of the environment (os.environ, `source`, `env`)."""
    def is_env(expr: ast.AST) -> bool:
        return (isinstance(expr, ast.Name) and expr.id in _ENV_NAMES) or (
            isinstance(expr, ast.Attribute) and expr.attr in _ENV_NAMES)

    key: ast.AST | None = None
    if isinstance(node, ast.Call) and node.args and isinstance(node.func, ast.Attribute):
        reads = node.func.attr in ("get", "pop", "setdefault") and is_env(node.func.value)
        if reads or node.func.attr == "getenv":
            key = node.args[0]
    elif isinstance(node, ast.Subscript) and is_env(node.value):
        key = node.slice
    if isinstance(key, ast.Constant) and isinstance(key.value, str) and _VARIABLE.match(key.value):
        return key.value
    return None


def variables_read() -> set[str]:
    """Every environment variable the product reads, found in its source."""
    found: set[str] = set()
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            name = _env_key(node)
            if name:
                found.add(name)
    return found


def settings_table() -> set[str]:
    """The variables in the first column of the README's settings table (under ## Configuration)."""
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \|", _section("Configuration"), re.M)
    assert rows, "the Configuration section has no settings table"
    return set(rows)


def cli_verbs(parser: argparse.ArgumentParser | None = None, prefix: str = "") -> Iterator[str]:
    """Every runnable command path of the CLI: "spend", "batch run", "prices refresh", ..."""
    parser = parser or build_parser()
    subactions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subactions:
        yield prefix
        return
    for action in subactions:
        for name, child in action.choices.items():
            yield from cli_verbs(child, f"{prefix} {name}".strip())


def command_list() -> str:
    """The README's command list: the shell block in the ## Command line section."""
    blocks = re.findall(r"^```sh\n(.*?)^```", _section("Command line"), re.S | re.M)
    assert blocks, "the Command line section has no ```sh block"
    return "\n".join(blocks)


def test_the_scan_finds_settings_and_verbs() -> None:
    """The walkers themselves work: known settings and verbs are found, so the tests below can fail."""
    assert {"DATABASE_URL", "MONTHLY_BUDGET_USD", "LOG_LEVEL", "CONSOLE_PASSWORD_HASH"} <= variables_read()
    verbs = set(cli_verbs())
    assert {"spend", "batch run", "prices refresh", "templates add"} <= verbs
    assert "batch" not in verbs and "prices" not in verbs  # groups are not verbs; their subcommands are


def test_every_setting_is_in_the_readme_table() -> None:
    missing = sorted(variables_read() - settings_table())
    assert not missing, f"settings read by the product but missing from the README's table: {missing}"


def test_the_readme_table_lists_only_settings_that_are_read() -> None:
    stale = sorted(settings_table() - variables_read())
    assert not stale, f"the README's settings table lists variables nothing reads: {stale}"


def test_every_settings_field_is_described() -> None:
    """Each field of Settings (what the engine is configured with) is shown on the Settings page by its variable,
    and each of those variables is in the README's table."""
    from dataclasses import fields

    described = {row["variable"] for row in Settings(database_url="sqlite://", llm_provider="simulator").describe()}
    fields_of_settings = {f.name for f in fields(Settings)} - {"data_dir"}  # SAM_DATA_DIR: where data lives
    assert len(described) == len(fields_of_settings), (
        f"Settings has {len(fields_of_settings)} fields but describe() shows {len(described)} variables")
    assert not described - settings_table(), f"not in the README's table: {sorted(described - settings_table())}"


@pytest.mark.parametrize("verb", sorted(cli_verbs()))
def test_every_cli_verb_is_in_the_readme_command_list(verb: str) -> None:
    assert re.search(rf"python -m core {re.escape(verb)}(?=[ \n])", command_list()), (
        f"`python -m core {verb}` is missing from the README's command list")


def _verb_tree() -> dict[str, dict]:
    tree: dict[str, dict] = {}
    for verb in cli_verbs():
        node = tree
        for word in verb.split():
            node = node.setdefault(word, {})
    return tree


def test_the_readme_command_list_names_only_real_verbs() -> None:
    tree = _verb_tree()
    for match in re.finditer(r"python -m core ([a-z][a-z-]*(?: [a-z][a-z-]*)*)", command_list()):
        node, words = tree, match.group(1).split()
        assert words[0] in tree, f"the README names a command that does not exist: {match.group(0)}"
        for word in words:
            if not node or word not in node:
                break
            node = node[word]
        assert not node, f"the README names a command group without a verb: {match.group(0)}"


def test_every_console_page_is_in_the_readme_pages_table() -> None:
    """Each page of the navigation (console.PAGE_TABLE) has a row, by its title, in the README's Pages table."""
    from console import PAGE_TABLE

    rows = set(re.findall(r"^\| ([^|`]+?) \|", _section("Pages"), re.M)) - {"page"}
    titles = {title for _path, title, _icon, _url in PAGE_TABLE}
    assert not titles - rows, f"pages missing from the README's Pages table: {sorted(titles - rows)}"
    assert not rows - titles, f"the README's Pages table lists pages the console does not have: {sorted(rows - titles)}"
