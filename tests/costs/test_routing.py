import json
from datetime import date
from pathlib import Path

import pytest

from core.config import DATA_DIR
from core.costs.routing import TASKS, RoutingError, load_routing


def test_seed_defaults() -> None:
    table = load_routing()
    today = date(2026, 11, 25)
    assert table.route("personalize", today).model == "mistralai/mistral-7b-instruct"
    assert table.route("context", today).model == "mistralai/mistral-nemo"
    assert table.route("classify_reply", today).model == "meta-llama/llama-3-8b-instruct"
    review = table.route("review", today)
    assert review.model == "anthropic/claude-sonnet-4.5"
    assert review.models == ["anthropic/claude-sonnet-4.5", "anthropic/claude-sonnet-5.5"]
    assert set(TASKS) <= set(table.entries)


def test_retired_primary_falls_back_to_replacement() -> None:
    review = load_routing().route("review", date(2026, 12, 1))
    assert review.model == "anthropic/claude-sonnet-5.5"
    assert review.configured_model == "anthropic/claude-sonnet-4.5"


def test_unknown_task() -> None:
    with pytest.raises(RoutingError, match="no route for task"):
        load_routing().route("translate", date(2026, 11, 25))


def test_broken_table_is_refused(tmp_path: Path) -> None:
    for name in ("prices.json", "model_lifecycle.json"):
        (tmp_path / name).write_text((DATA_DIR / name).read_text())
    (tmp_path / "routing.json").write_text(json.dumps({"routes": {"personalize": {"model": "x"}}}))
    with pytest.raises(RoutingError, match="personalize"):
        load_routing(tmp_path)
    (tmp_path / "routing.json").write_text("{not json")
    with pytest.raises(RoutingError, match="cannot read"):
        load_routing(tmp_path)
