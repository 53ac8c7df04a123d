"""No module of the product imports another inside `try: ... except ImportError`: a missing or renamed module is
an error at start-up, never a feature that silently switches itself off (the batch loop once skipped
experiment assignments that way)."""

from __future__ import annotations

import ast
from pathlib import Path

from core.config import PROJECT_ROOT

PRODUCT = [PROJECT_ROOT / "core", PROJECT_ROOT / "pages", PROJECT_ROOT / "app.py", PROJECT_ROOT / "console",
           PROJECT_ROOT / "serve.py"]


def _sources() -> list[Path]:
    out: list[Path] = []
    for root in PRODUCT:
        out += sorted(root.rglob("*.py")) if root.is_dir() else [root]
    return out


def _hooks(path: Path) -> list[str]:
    """`module:line` of each try block that imports a product module and catches ImportError."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Try):
            continue
        caught = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
        if not any("ImportError" in c or "ModuleNotFoundError" in c for c in caught):
            continue
        for inner in (n for stmt in node.body for n in ast.walk(stmt)):
            module = (inner.module or "") if isinstance(inner, ast.ImportFrom) else \
                ",".join(a.name for a in inner.names) if isinstance(inner, ast.Import) else ""
            if any(m.split(".")[0] in ("core", "console", "pages", "app") for m in module.split(",") if m):
                found.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}")
    return found


def test_the_scan_finds_a_hook() -> None:
    sample = PROJECT_ROOT / "tests" / "_hook_sample.py"
    sample.write_text("try:\n    from core.experiments import lifecycle\nexcept ImportError:\n    lifecycle = None\n")
    try:
        assert _hooks(sample) == ["tests/_hook_sample.py:1"]
    finally:
        sample.unlink()


def test_no_product_module_hides_an_import_behind_importerror() -> None:
    assert [hook for path in _sources() for hook in _hooks(path)] == []
