"""Where people see what an export withheld: `python -m core export` and the Review page say
"withheld N: do not contact", and the review table marks the people on the do-not-contact list."""

from __future__ import annotations

import json
from pathlib import Path

from core.batches.creation import create_batch
from core.batches.lifecycle import start_batch
from core.batches.runs import run_pending
from core.config import Settings
from core.demo import open_demo_app
from core.messages.approvals import QueueFilter, approve, queue
from core.people.prospects import import_prospects, suppress
from tests.cli.test_cli import run_cli
from tests.conftest import page_test

CSV = (b"first_name,last_name,company_name,linkedin_url,email\n"
       b"Jane,Doe,Acme,https://fr.linkedin.com/in/jane-doe/,JANE.DOE@ACME.EXAMPLE\n"
       b"Marc,Roux,Bleu,https://www.linkedin.com/in/marc-roux,marc@bleu.example\n")


def _approved_then_opted_out(settings: Settings) -> int:
    app = open_demo_app(settings)
    report = import_prospects(app, CSV)
    batch = create_batch(app, report.prospect_ids, template_name="connection_request_safe")
    assert batch.id is not None
    start_batch(app, batch.id)
    run_pending(app, "w1")
    approve(app, [r.id for r in queue(app, QueueFilter(batch_id=batch.id))])
    suppress(app, "email:jane.doe@acme.example", "opt-out by phone")
    return batch.id


def test_cli_export_says_how_many_it_withheld_and_why(settings: Settings, tmp_path: Path) -> None:
    batch_id = _approved_then_opted_out(settings)
    out_file = tmp_path / "approved.csv"
    done = run_cli(settings.database_url, "export", str(batch_id), "--out", str(out_file), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["rows"], result["withheld"], result["withheld_reason"]) == (1, 1, "do not contact")
    assert b"Jane" not in out_file.read_bytes() and b"Marc" in out_file.read_bytes()
    plain = run_cli(settings.database_url, "export", str(batch_id), "--out", str(out_file))
    assert "withheld 1: do not contact" in plain.stdout


def test_review_page_marks_suppressed_rows_and_says_what_the_export_withheld(console_env: Settings) -> None:
    _approved_then_opted_out(console_env)
    review = page_test("pages/review.py")
    review.run()
    assert not review.exception
    table = review.dataframe[0].value
    marks = dict(zip(table["prospect"], table["do_not_contact"], strict=True))
    assert marks == {"Jane Doe": True, "Marc Roux": False}
    assert any("withheld 1: do not contact" in w.value for w in review.warning)
