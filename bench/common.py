"""Helpers shared by the benchmark scripts: a throwaway app on a temp database, and table printing."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from core.app import App, open_app
from core.config import DATA_DIR, Settings
from core.demo import open_demo_app


def temp_app(load_demo: bool = True, latency_ms: int = 0) -> App:
    folder = Path(tempfile.mkdtemp(prefix="sam-bench-"))
    settings = Settings(database_url=f"sqlite:///{folder / 'bench.db'}", llm_provider="simulator",
                        data_dir=DATA_DIR, simulator_latency_ms=latency_ms)
    return open_demo_app(settings) if load_demo else open_app(settings)


def print_table(title: str, rows: Sequence[Sequence[object]], header: Sequence[str]) -> None:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for i, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
