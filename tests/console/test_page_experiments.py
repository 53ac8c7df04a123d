"""AppTest of the three experiment pages: results (empty state, table and charts, outcomes upload, promote), new
experiment (planner, segment rule, create) and variants (estimate first, one template and bulk)."""

from __future__ import annotations

from typing import Any

from sqlmodel import func, select

from core.app import App
from core.batches.runs import run_pending
from core.config import Settings
from core.experiments.assignment import assigned_templates
from core.experiments.catalog import create_experiment
from core.experiments.outcomes import import_outcomes
from core.messages.library import add_template, get_template
from core.people.prospects import list_prospects
from core.store.db import session_scope
from core.store.models import Outcome
from tests.conftest import page_test

PAGE = "pages/experiments.py"
NEW = "pages/experiment_new.py"
VARIANTS = "pages/experiment_variants.py"
TEXT_B = "Hello {{ first_name }}, {{ recent_achievement }} Would be glad to connect with {{ company_name }}."


def _page(path: str = PAGE) -> Any:
    at = page_test(path)
    at.run()
    assert not at.exception, at.exception
    return at


def _metrics(at: Any) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _experiment(app: App) -> tuple[int, list[Any]]:
    add_template(app, "cr_b", "connection_request", TEXT_B)
    exp = create_experiment(app, "page test", "connection_request", "connection_request_default", ["cr_b"])
    assert exp.id is not None
    people = list_prospects(app, limit=1000)
    assigned = assigned_templates(app, [p.id for p in people if p.id is not None], "connection_request")
    return exp.id, [p for p in people if p.id in assigned]


def _outcomes_csv(people: list[Any]) -> bytes:
    rows = ["identity,sent_at,replied,positive"]
    rows += [f"{p.identity},2026-01-{1 + i % 20:02d},{int(i % 3 == 0)},{int(i % 6 == 0)}" for i, p in enumerate(people)]
    return "\n".join(rows).encode()


def _outcomes(app: App) -> int:
    with session_scope(app.engine) as s:
        return int(s.exec(select(func.count()).select_from(Outcome)).one())


def test_empty_state_points_to_the_new_experiment_page(console_env: Settings) -> None:
    at = _page()
    infos = " ".join(i.value for i in at.info)
    assert "No experiments yet" in infos and "Results appear here" in infos
    assert len(at.get("plotly_chart")) == 0 and "Sends recorded" not in _metrics(at)
    assert "new-experiment" in [p.proto.page for p in at.get("page_link")]


def test_planner(console_env: Settings) -> None:
    at = _page(NEW)
    assert _metrics(at)["Sends per arm"] == "1,769" and _metrics(at)["Weeks at this volume"] == "8.8"
    at.number_input(key="exp_new_mde").set_value(0.05).run()
    smaller = int(_metrics(at)["Sends per arm"].replace(",", ""))
    assert smaller < 1769
    at.number_input(key="exp_new_weekly").set_value(smaller * 2).run()
    assert _metrics(at)["Weeks at this volume"] == "1.0"
    assert at.button(key="exp_new_start").disabled  # no variant chosen yet


def test_create_an_experiment_from_the_page(console_env: Settings) -> None:
    at = _page(NEW)
    assert "connection_request_plain" in at.multiselect(key="exp_new_variants").options
    at.multiselect(key="exp_new_variants").set_value(["connection_request_plain"]).run()
    assert _metrics(at)["Total sends (2 arms)"] == "3,538"
    at.button(key="exp_new_start").click().run()
    assert not at.exception
    assert any("Experiment #1 started" in s.value for s in at.success)
    results = _page()
    listed = results.dataframe[0].value
    assert list(listed["name"]) == [f"connection_request {listed['started'][0]}"]
    assert list(listed["status"]) == ["running"]
    assert any("Verdict withheld" in w.value for w in results.warning)
    assert any("No sends recorded yet" in i.value for i in results.info)
    # the same step and segment cannot run twice
    at.multiselect(key="exp_new_variants").set_value(["connection_request_plain"]).run()
    at.text_input(key="exp_new_name").set_value("another").run()
    at.button(key="exp_new_start").click().run()
    assert any("Not started" in e.value for e in at.error)
    assert any("already running" in t.value for t in at.text)


def test_results_table_charts_and_withheld_verdict(console_env: Settings, demo_app: App) -> None:
    exp_id, people = _experiment(demo_app)
    import_outcomes(demo_app, exp_id, _outcomes_csv(people))
    at = _page()
    assert _metrics(at)["Sends recorded"] == f"{len(people):,}"
    assert len(at.get("plotly_chart")) == 2
    table = at.dataframe[1].value
    assert list(table["arm"]) == ["connection_request_default (control)", "cr_b"]
    assert all("%" in cell for cell in table["95% interval"])
    assert any("Verdict withheld" in w.value for w in at.warning)
    assert any(t.value.startswith("Withheld:") and "planned sends per arm" in t.value for t in at.text)


def test_upload_outcomes_refused_then_stored(console_env: Settings, demo_app: App) -> None:
    exp_id, people = _experiment(demo_app)
    at = _page()
    bad = _outcomes_csv(people[:3]) + b"\nemail:ghost@example.com,2026-01-02,1,1\n" + \
        f"{people[4].identity},someday,1,1".encode()
    at.file_uploader(key=f"exp_outcomes_{exp_id}").set_value(("outcomes.csv", bad, "text/csv")).run()
    at.button(key=f"exp_store_{exp_id}").click().run()
    assert not at.exception
    assert any("2 problem(s). Nothing was stored." in e.value for e in at.error)
    problems = next(d.value for d in at.dataframe if "problem" in d.value.columns)
    assert list(problems["line"]) == [5, 6] and "unknown prospect" in problems["problem"][0]
    assert _outcomes(demo_app) == 0

    at.file_uploader(key=f"exp_outcomes_{exp_id}").set_value(("outcomes.csv", _outcomes_csv(people[:10]),
                                                             "text/csv")).run()
    at.button(key=f"exp_store_{exp_id}").click().run()
    assert not at.exception
    assert any("Stored 10 outcome(s): 10 new, 0 updated." in s.value for s in at.success)
    assert _metrics(at)["Sends recorded"] == "10" and _outcomes(demo_app) == 10


def test_promote_needs_a_name_and_force_while_withheld(console_env: Settings, demo_app: App) -> None:
    exp_id, _ = _experiment(demo_app)
    at = _page()
    at.selectbox(key=f"exp_arm_{exp_id}").set_value("cr_b").run()
    assert any("promoting needs “force”" in w.value for w in at.warning)
    at.button(key=f"exp_promote_{exp_id}").click().run()
    assert any("Not promoted" in e.value for e in at.error)
    at.text_input(key=f"exp_by_{exp_id}").input("Sam Lee").run()
    at.button(key=f"exp_promote_{exp_id}").click().run()
    assert any("verdict is withheld" in t.value for t in at.text)
    at.checkbox(key=f"exp_force_{exp_id}").check().run()
    at.button(key=f"exp_promote_{exp_id}").click().run()
    assert not at.exception
    assert any("Promoted (forced)" in s.value for s in at.success)
    assert get_template(demo_app, "cr_b").is_default  # type: ignore[union-attr]
    assert any("Promoted cr_b by Sam Lee" in t.value and "It was forced" in t.value for t in at.text)
    assert not [b for b in at.button if b.key == f"exp_promote_{exp_id}"]


def test_generate_variants_shows_the_estimate_first(console_env: Settings, demo_app: App) -> None:
    at = _page(VARIANTS)
    at.selectbox(key="exp_var_base").set_value("connection_request_plain").run()
    at.number_input(key="exp_var_count").set_value(2).run()
    metrics = [m for m in at.metric if m.label == "At most"]
    assert metrics and metrics[0].value.startswith("$0.0000")
    at.button(key="exp_var_go").click().run()
    assert not at.exception
    candidates = next(d.value for d in at.dataframe if "why discarded" in d.value.columns)
    assert list(candidates["name"]) == ["connection_request_plain_v1", "connection_request_plain_v2"]
    assert get_template(demo_app, "connection_request_plain_v2") is not None

    at.selectbox(key="exp_bulk_industry").set_value("Fintech").run()
    bulk_buttons = [b for b in at.button if b.key == "exp_bulk_go"]
    assert bulk_buttons and "1 template, at most" in bulk_buttons[0].label
    bulk_buttons[0].click().run()
    assert not at.exception
    progress = " ".join(str(p.proto.text) for p in at.get("progress"))
    assert "0 of 1 template — queued" in progress, "bulk generation is a batch for the worker"
    assert not any(t.value.startswith("Spent $") for t in at.text)
    run_pending(demo_app, "test-worker")  # the console's background worker
    at.run()
    assert not at.exception
    assert any(t.value.startswith("Spent $") for t in at.text)
