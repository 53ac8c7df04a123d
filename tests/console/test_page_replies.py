"""AppTest of the Replies page: empty states, one pasted reply, a CSV import with its report, classification
under the budget, an override, and the provider evaluation."""

from __future__ import annotations

from decimal import Decimal

from sqlmodel import select

from core.app import open_app
from core.batches.runs import run_pending
from core.config import Settings
from core.demo import open_demo_app
from core.store.db import session_scope
from core.store.models import Reply, Suppression
from tests.conftest import page_test

IVO = "https://www.linkedin.com/in/ivo-underhill-demo"  # a demo prospect
REPLIES_CSV = (
    "linkedin_url,email,reply,received\n"
    f"{IVO},,<script>alert(1)</script> Please unsubscribe me,2025-03-04\n"
    ",stranger@else.example,\"**Sounds great**, let's talk Tuesday at 3pm?\",2025-03-04\n"
    ",stranger@else.example,Out of office until 20 March,2025-03-05\n"
    ",not-an-email,hello,2025-03-05\n"
).encode()


def markdown_text(at) -> str:  # type: ignore[no-untyped-def]
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [w.value for w in at.warning]
    parts += [e.value for e in at.error] + [s.value for s in at.success] + [i.value for i in at.info]
    return "\n".join(str(p) for p in parts)


def test_empty_page_renders_with_empty_states(console_env: Settings) -> None:
    at = page_test("pages/replies.py")
    at.run()
    assert not at.exception
    infos = " ".join(i.value for i in at.info)
    assert "No reply is waiting" in infos and "No replies yet" in infos
    assert "No evaluation has run" in " ".join(c.value for c in at.caption)
    at.button(key="replies_classify_one").click().run()
    assert not at.exception and "Paste a reply first" in at.warning[0].value


def test_pasted_reply_shows_category_confidence_and_next_action(console_env: Settings) -> None:
    at = page_test("pages/replies.py")
    at.run()
    pasted = "<b>Not the right person</b> — please talk to Lars Eriksen, he runs sales."
    at.text_area(key="replies_paste").input(pasted).run()
    at.button(key="replies_classify_one").click().run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Category"] == "Wrong person" and float(metrics["Confidence"]) >= 0.6
    texts = " ".join(t.value for t in at.text)
    assert "Next action: Record who they point to" in texts and "Lars Eriksen" in texts
    assert "<b>" not in markdown_text(at) and "Lars" not in markdown_text(at)
    with session_scope(open_demo_app(console_env).engine) as s:
        assert s.exec(select(Reply)).all() == [], "a pasted reply is not stored"


def _progress_text(at) -> str:  # type: ignore[no-untyped-def]
    return " ".join(str(p.proto.text) for p in at.get("progress"))


def test_upload_import_classify_override(console_env: Settings) -> None:
    at = page_test("pages/replies.py")
    at.run()
    at.file_uploader(key="replies_upload").set_value(("replies.csv", REPLIES_CSV, "text/csv")).run()
    at.button(key="replies_import").click().run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rows read"] == "4" and metrics["Stored"] == "3" and metrics["Rejected"] == "1"
    frames = [f.value for f in at.dataframe]
    rejected = next(f for f in frames if "reason" in f.columns and "not a valid email" in " ".join(f["reason"]))
    assert list(rejected["line"]) == [5]
    unknown = next(f for f in frames if "identity" in f.columns)
    assert list(unknown["line"]) == [3, 4] and set(unknown["identity"]) == {"email:stranger@else.example"}
    assert "3 replies pending" in " ".join(t.value for t in at.text)

    at.button(key="replies_classify_pending").click().run()
    assert not at.exception
    assert "0 of 3 classified — queued," in _progress_text(at), "classification is a batch for the worker"
    run_pending(open_app(console_env), "test-worker")  # the console's background worker
    at.run()
    assert "3 of 3 classified — done" in _progress_text(at)
    assert "No reply is waiting" in " ".join(i.value for i in at.info)
    review = next(f for f in (f.value for f in at.dataframe) if "next_action" in f.columns)
    assert set(review["category"]) == {"Do not contact", "Wants a call", "Out of office"}, "labels, not codes"
    assert len(at.get("plotly_chart")) == 1
    assert "<script>" not in markdown_text(at) and "**Sounds" not in markdown_text(at)
    engine = open_demo_app(console_env).engine
    with session_scope(engine) as s:
        assert s.get(Suppression, f"li:{IVO}") is not None

    opt_out = int(review[review["category"] == "Do not contact"]["id"].iloc[0])
    at.selectbox(key="replies_pick").set_value(opt_out)
    at.selectbox(key="replies_new_category").set_value("not_interested")
    at.button(key="replies_save_override").click().run()
    assert not at.exception and "override was not saved" in at.error[0].value, "a name is required"
    at.text_input(key="replies_by").input("Maria")
    at.button(key="replies_save_override").click().run()
    assert not at.exception and f"Reply #{opt_out} is now: Not interested" in at.success[0].value
    review = next(f for f in (f.value for f in at.dataframe) if "next_action" in f.columns)
    row = review[review["id"] == opt_out].iloc[0]
    assert row["override"] == "Not interested" and row["model_category"] == "Do not contact"
    assert row["overridden_by"] == "Maria" and row["next_action"] == "Stop the sequence"
    with session_scope(engine) as s:
        assert s.get(Suppression, f"li:{IVO}") is None, "the override took back the opt-out"


def test_unreadable_upload_is_refused_with_the_reason(console_env: Settings) -> None:
    at = page_test("pages/replies.py")
    at.run()
    at.file_uploader(key="replies_upload").set_value(("r.csv", b"email,received\na@b.co,2025-03-01\n", "text/csv"))
    at.run()
    at.button(key="replies_import").click().run()
    assert not at.exception and "nothing was stored" in at.error[0].value
    assert "no column for the reply text" in " ".join(t.value for t in at.text)


def test_budget_stops_classification_with_a_clear_message(console_env: Settings) -> None:
    app = open_demo_app(console_env)
    app.set_budget_cap(Decimal(0))
    at = page_test("pages/replies.py")
    at.run()
    at.file_uploader(key="replies_upload").set_value(("replies.csv", REPLIES_CSV, "text/csv")).run()
    at.button(key="replies_import").click().run()
    at.button(key="replies_classify_pending").click().run()
    run_pending(app, "test-worker")
    at.run()
    assert not at.exception
    assert "paused: the budget ran out" in _progress_text(at)
    assert any("Budget reached" in w.value for w in at.warning)
    assert "3 replies pending" in " ".join(t.value for t in at.text), "nothing was lost: all still pending"


def test_evaluation_shows_accuracy_table_and_confusion_matrix(console_env: Settings) -> None:
    at = page_test("pages/replies.py")
    at.run()
    at.button(key="replies_evaluate").click().run()
    assert not at.exception
    assert "0 of 170 labelled replies classified" in _progress_text(at), "the evaluation is a batch for the worker"
    run_pending(open_app(console_env), "test-worker")  # the console's background worker
    at.run()
    assert not at.exception
    accuracy = next(m.value for m in at.metric if m.label == "Accuracy")
    assert accuracy.endswith("%") and 50 < float(accuracy.rstrip("%")) <= 100
    table = next(f for f in (f.value for f in at.dataframe) if "precision" in f.columns)
    assert len(table) == 8 and set(table.columns) >= {"category", "precision", "recall", "support"}
    assert len(at.get("plotly_chart")) == 1
