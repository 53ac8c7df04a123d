"""`core/llm` is a leaf: it imports nothing of the product outside itself, so the client, its errors, token
counting and the scrubber can be read, tested and reused without the engine around them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from core.config import PROJECT_ROOT

LLM = PROJECT_ROOT / "core" / "llm"


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append("." * node.level + (node.module or ""))
    return names


def test_core_llm_imports_only_itself_of_the_product() -> None:
    modules = sorted(LLM.glob("*.py"))
    assert len(modules) >= 4  # client, errors, tokens, secrets (and the package)
    found = [(path.name, name) for path in modules for name in _imports(path)]
    outside = [f"{file}: {name}" for file, name in found
               if (name == "core" or name.startswith("core.")) and not name.startswith("core.llm")]
    relative = [f"{file}: {name}" for file, name in found if name.startswith(".")]
    assert not outside, f"core/llm imports the product: {outside}"
    assert not relative, f"relative imports hide what core/llm depends on: {relative}"


def test_importing_the_client_loads_no_other_core_package() -> None:
    code = ("import sys, core.llm.client, core.llm.tokens; "
            "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('core.')}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "['llm']"
