"""AppTest of the Preview page: run a demo prospect, compare two templates, preview the sequence."""

from __future__ import annotations

from core.config import Settings
from tests.conftest import page_test


def test_preview_runs_a_demo_prospect(console_env: Settings) -> None:
    at = page_test("pages/preview.py")
    at.run()
    assert not at.exception
    at.button[0].click().run()
    assert not at.exception
    headers = [h.value for h in at.subheader]
    assert headers and headers[0] in {"Ready", "Fallback to the safe template", "Held: needs data"}
    assert any(m.label == "Cost" for m in at.metric)
    assert at.code, "the final message and trace are shown as code blocks, not markdown"
    assert not at.markdown or all("<" not in m.value for m in at.markdown)


def test_two_templates_side_by_side(console_env: Settings) -> None:
    at = page_test("pages/preview.py")
    at.run()
    at.selectbox[2].set_value("connection_request_default")
    at.selectbox[3].set_value("connection_request_plain")
    at.button[0].click().run()
    assert not at.exception
    assert len(at.subheader) == 2
    texts = " ".join(t.value for t in at.text)
    assert "connection_request_default" in texts and "connection_request_plain" in texts


def test_typed_prospect_missing_data_is_held(console_env: Settings) -> None:
    at = page_test("pages/preview.py")
    at.run()
    at.radio[0].set_value("Type one").run()
    at.text_input(key="typed_company_name").input("Nimbus").run()
    at.button[0].click().run()
    assert not at.exception
    assert at.subheader[0].value == "Held: needs data"


def test_sequence_preview(console_env: Settings) -> None:
    at = page_test("pages/preview.py")
    at.run()
    at.button[1].click().run()
    assert not at.exception
    frame = at.dataframe[-1].value
    assert list(frame["step"]) == ["Connection request", "First follow-up", "Second follow-up"], "steps by their labels"
