"""AppTest of the main journey: upload -> mapping -> estimate -> run -> progress -> review -> export."""

from __future__ import annotations

from core.app import open_app
from core.batches.runs import run_pending
from core.config import Settings
from tests.conftest import console_page, page_test

CSV = ("First Name,Company,Industry,Employees,Email,Recent News\n"
       + "".join(f"Pat{i},Co{i},SaaS,{100 + i * 400},pat{i}@example.com,Co{i} opened an office.\n" for i in range(8))
       + ",Nameless,SaaS,10,n@example.com,\n").encode()


def test_upload_estimate_run_review_export(console_env: Settings) -> None:
    at = console_page("pages/batches.py")
    at.run()
    assert not at.exception
    assert any("No batch yet" in i.value for i in at.info)
    at.file_uploader[0].set_value(("prospects.csv", CSV, "text/csv")).run()
    assert not at.exception
    assert any("9 records" in t.value for t in at.text)
    next(b for b in at.button if b.label == "Import").click().run()
    assert not at.exception
    labels = {m.label: m.value for m in at.metric}
    assert labels["Rows"] == "9" and labels["New"] == "8" and labels["Rejected"] == "1"
    assert "Estimated cost" in labels and "Premium review" in labels
    run_button = next(b for b in at.button if b.label == "Run batch")
    run_button.click().run()
    assert not at.exception
    assert at.session_state["follow"]
    batch_id = at.session_state["follow"]
    app = open_app(console_env)
    run_pending(app, "test-worker")  # the background worker's job (the console's thread is off in tests)
    at.run()
    assert not at.exception
    progress = " ".join(p.value["text"] if isinstance(p.value, dict) else str(p.proto.text) for p in at.get("progress"))
    assert "8 / 8 done" in progress and "done" in progress

    review = page_test("pages/review.py")
    review.run()
    assert not review.exception
    assert review.selectbox[0].value == batch_id
    assert len(review.dataframe[0].value) == 8
    next(b for b in review.button if b.label == "Approve everything that passed").click().run()
    assert not review.exception
    assert any("Approved" in s.value for s in review.success)
    assert "Approved" in set(review.dataframe[0].value["approval"]), "the table shows the approval at once"
    downloads = review.get("download_button")
    assert len(downloads) == 2


def _upload_and_import(at) -> None:  # type: ignore[no-untyped-def]
    at.file_uploader[0].set_value(("prospects.csv", CSV, "text/csv")).run()
    next(b for b in at.button if b.label == "Import").click().run()
    assert not at.exception


def test_one_batch_per_upload_holds_in_another_session(console_env: Settings) -> None:
    """Run pressed in one session; a second session (a reload, another tab, a colleague) uploading the same file
    is told which batch has it, and is offered no Run button: the database decides, not the browser."""
    first = console_page("pages/batches.py")
    first.run()
    _upload_and_import(first)
    next(b for b in first.button if b.label == "Run batch").click().run()
    assert not first.exception
    batch_id = first.session_state["follow"]

    second = console_page("pages/batches.py")
    second.run()
    _upload_and_import(second)
    assert not any(b.label == "Run batch" for b in second.button)
    assert any(f"Batch #{batch_id} was created for this file" in i.value for i in second.info), [
        i.value for i in second.info]
    # The rejected row of the file is not a prospect; the eight that are, are the batch's.
    assert not any("left out:" in i.value for i in second.info)


def test_the_estimate_of_an_upload_is_worked_out_once(console_env: Settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import core.costs.estimate as estimate_module

    runs: list[int] = []
    real = estimate_module._dry_run

    async def counted(app, people, options):  # type: ignore[no-untyped-def]
        runs.append(len(people))
        return await real(app, people, options)

    monkeypatch.setattr(estimate_module, "_dry_run", counted)
    at = console_page("pages/batches.py")
    at.run()
    at.file_uploader[0].set_value(("prospects.csv", CSV.replace(b"Pat", b"Kim"), "text/csv")).run()
    next(b for b in at.button if b.label == "Import").click().run()
    assert not at.exception and runs == [8]
    tiles = {m.label: m.value for m in at.metric}
    assert sum(int(tiles[k]) for k in ("Template only", "Model-written", "Premium review", "Needs data")) == 8
    at.run()
    at.run()
    assert runs == [8], "a rerun of the page reuses the estimate"
    next(s for s in at.selectbox if s.label == "Sequence step").set_value("follow_up_1").run()
    assert not at.exception and runs == [8, 8], "another step is another estimate"
