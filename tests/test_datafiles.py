"""One loader for the JSON files in data/ (core.datafiles): cached by path, modification time and size, so an
edited file is seen by every reader on its next call and an unchanged one is not parsed again."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from core import datafiles
from core.config import DATA_DIR
from core.costs.prices import load_lifecycle
from core.messages.library import markers, steps
from core.replies.routing import load_routing_config


def write(path: Path, value: Any, *, bump: int = 0) -> None:
    path.write_text(json.dumps(value), encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + bump))


def test_an_unchanged_file_is_parsed_once_and_an_edited_one_again(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    write(path, {"a": 1})
    calls: list[Any] = []

    def parse(where: Path, raw: Any) -> int:
        calls.append(raw)
        return int(raw["a"])

    assert datafiles.load(path, parse) == 1 and datafiles.load(path, parse) == 1
    assert len(calls) == 1
    write(path, {"a": 2}, bump=1_000_000_000)
    assert datafiles.load(path, parse) == 2 and len(calls) == 2
    assert datafiles.read_json(path) == {"a": 2}


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(datafiles.DataFileError, match=r"missing\.json: cannot read the file"):
        datafiles.read_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{oops", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.json: not valid JSON \(line 1, column 2\)"):
        datafiles.read_json(bad)


def copy_data(tmp_path: Path, *names: str) -> Path:
    for name in names:
        (tmp_path / name).write_bytes((DATA_DIR / name).read_bytes())
    return tmp_path


def test_markers_steps_lifecycle_and_reply_routing_see_an_edit(tmp_path: Path) -> None:
    """These had three policies: cached forever (markers, steps), by modification time (lifecycle, reply
    routing). Now all four see an edited file."""
    data = copy_data(tmp_path, "markers.json", "steps.json", "model_lifecycle.json", "reply_routing.json")
    before = (markers(data), steps(data), load_lifecycle(data), load_routing_config(data))
    edited_markers = {**json.loads((data / "markers.json").read_text()), "new_marker": "One new line to write."}
    write(data / "markers.json", edited_markers, bump=1_000_000_000)
    raw_steps = json.loads((data / "steps.json").read_text())
    first = next(iter(raw_steps))
    raw_steps[first]["label"] = "Edited label"
    write(data / "steps.json", raw_steps, bump=1_000_000_000)
    raw_life = json.loads((data / "model_lifecycle.json").read_text())
    raw_life["warn_days"] = int(raw_life.get("warn_days", 30)) + 7
    write(data / "model_lifecycle.json", raw_life, bump=1_000_000_000)
    raw_routing = json.loads((data / "reply_routing.json").read_text())
    raw_routing["default_pause_days"] = before[3].default_pause_days + 1
    write(data / "reply_routing.json", raw_routing, bump=1_000_000_000)

    assert "new_marker" in markers(data) and "new_marker" not in before[0]
    assert steps(data)[first].label == "Edited label"
    assert load_lifecycle(data)[1] == before[2][1] + 7
    assert load_routing_config(data).default_pause_days == before[3].default_pause_days + 1
