"""Tests for core.messages.templates: rendering, fallbacks, markers, validation, selection and shipped data."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest

from core.config import PROJECT_ROOT
from core.messages.templates import (
    SIZE_BANDS,
    Rendered,
    TemplateError,
    TemplateInfo,
    TemplateSpec,
    analyze,
    fill_markers,
    load_library,
    load_markers,
    load_steps,
    preview_text,
    render,
    select_template,
    size_band,
    validate,
)

DATA = PROJECT_ROOT / "data"
MARKERS = {
    "recent_achievement": "a recent milestone",
    "company_insight": "something about the company",
    "industry_trend": "a trend in the industry",
}
FIELDS = [
    "first_name", "last_name", "company_name", "job_title", "industry", "company_size",
    "linkedin_url", "email", "recent_news", "notes", "sender_account",
]
PROSPECT = {"first_name": "Ana", "company_name": "Quillon Cloud", "job_title": "VP Sales", "industry": "SaaS"}


def _demo_rows() -> list[dict[str, str]]:
    with (DATA / "demo_prospects.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


# --- rendering and fallbacks ----------------------------------------------------------------------


def test_plain_variables_are_filled_without_markers() -> None:
    r = render("Hi {{ first_name }}, how is {{ company_name }}?", PROSPECT, MARKERS)
    assert r.text == "Hi Ana, how is Quillon Cloud?"
    assert (r.markers, r.missing, r.needs_data, r.needs_writing) == ((), (), False, False)
    assert fill_markers(r, {}) == "Hi Ana, how is Quillon Cloud?"


@pytest.mark.parametrize("value", [None, "", "   ", "\n\t"])
def test_default_filter_applies_to_none_empty_and_blank(value: str | None) -> None:
    r = render('Hi {{ first_name | default: "there" }}!', {"first_name": value}, MARKERS)
    assert r.text == "Hi there!"
    assert not r.needs_data


@pytest.mark.parametrize("variables", [{}, {"first_name": None}, {"first_name": ""}, {"first_name": "  "}])
def test_missing_variable_lands_in_missing_never_blank_or_braces(variables: dict[str, str | None]) -> None:
    r = render("Hi {{ first_name }}, congrats to {{ company_name }}.", {**variables, "company_name": "X"}, MARKERS)
    assert r.missing == ("first_name",)
    assert r.needs_data
    assert "{{" not in r.text and "Hi , " not in r.text
    assert preview_text(r) == "Hi ⟨missing: first_name⟩, congrats to X."
    with pytest.raises(ValueError, match="first_name"):
        fill_markers(r, {})


def test_missing_is_reported_once_in_order_of_appearance() -> None:
    r = render("{{ b }} {{ a }} {{ b }}", {}, MARKERS)
    assert r.missing == ("b", "a")


@pytest.mark.parametrize(
    "value",
    ["{{ first_name }}", "{% raw %}", "{% if true %}x{% endif %}", "{{ recent_achievement }}", "<b>&amp;</b>"],
)
def test_values_with_liquid_syntax_are_inserted_literally(value: str) -> None:
    for template in ("Hi {{ company_name }}!", "Hi {% if company_name %}{{ company_name }}{% endif %}!"):
        r = render(template, {"company_name": value, "first_name": "Ana"}, MARKERS)
        assert r.text == f"Hi {value}!"
        assert r.markers == () and r.missing == ()


def test_user_values_cannot_forge_a_marker_slot() -> None:
    forged = "\x00m:recent_achievement\x00"
    r = render("Hi {{ first_name }}", {"first_name": f"Ana{forged}"}, MARKERS)
    assert r.markers == ()
    assert "\x00" not in r.text
    assert fill_markers(r, {}) == "Hi Anam:recent_achievement"


def test_non_string_values_are_stringified_and_nan_is_missing() -> None:
    r = render("{{ company_size }} / {{ first_name }}", {"company_size": 120, "first_name": float("nan")}, MARKERS)  # type: ignore[dict-item]
    assert r.missing == ("first_name",)
    assert r.text.startswith("120 / ")


def test_fast_path_and_liquid_path_agree() -> None:
    # The second template of each pair has a no-op tag, which forces the Liquid interpreter.
    cases = [
        'Hi {{ first_name | default: "there" }}, {{ recent_achievement }} at {{ company_name }}.',
        "Hi {{- first_name -}} ! {{ industry_trend }}\n{{ job_title }}",
        "{{ company_insight }}{{ x }}{{ company_insight }}",
    ]
    values: list[dict[str, str | None]] = [PROSPECT, {}, {"first_name": " ", "x": "{{ y }}"}]
    for text in cases:
        for variables in values:
            fast = render(text, variables, MARKERS)
            slow = render(text + "{% comment %}force Liquid{% endcomment %}", variables, MARKERS)
            assert fast == slow, (text, variables)


def test_conditional_blocks_and_filters_render_through_liquid() -> None:
    text = "Hi {% if job_title %}{{ job_title | upcase }} {% endif %}{{ first_name | capitalize }}"
    assert render(text, {"first_name": "ana", "job_title": "cto"}, MARKERS).text == "Hi CTO Ana"
    r = render(text, {"first_name": "ana"}, MARKERS)
    assert r.text == "Hi Ana" and not r.needs_data


def test_filter_on_missing_value_still_reports_it() -> None:
    r = render("Hi {{ first_name | upcase }}", {}, MARKERS)
    assert r.missing == ("first_name",)
    assert preview_text(r) == "Hi ⟨missing: FIRST_NAME⟩"


# --- markers --------------------------------------------------------------------------------------


def test_markers_become_slots_and_are_filled() -> None:
    text = "Hi {{ first_name }}, {{ recent_achievement }} {{ company_insight }} {{ recent_achievement }}"
    r = render(text, PROSPECT, MARKERS)
    assert r.markers == ("recent_achievement", "company_insight")
    assert r.needs_writing and not r.needs_data
    assert "recent_achievement" not in r.text.replace("\x00m:recent_achievement\x00", "")
    assert preview_text(r) == "Hi Ana, ⟨recent_achievement⟩ ⟨company_insight⟩ ⟨recent_achievement⟩"
    out = fill_markers(
        r, {"recent_achievement": "  Congrats on the\nSeries B!  ", "company_insight": "{{ first_name }} {% raw %}"}
    )
    assert out == "Hi Ana, Congrats on the Series B! {{ first_name }} {% raw %} Congrats on the Series B!"


@pytest.mark.parametrize("texts", [{}, {"recent_achievement": "   "}, {"other": "x"}])
def test_fill_markers_names_the_unwritten_marker(texts: dict[str, str]) -> None:
    r = render("Hi {{ first_name }}, {{ recent_achievement }}", PROSPECT, MARKERS)
    with pytest.raises(KeyError, match="recent_achievement"):
        fill_markers(r, texts)


def test_markers_only_in_a_taken_branch_need_writing() -> None:
    text = "Hi{% if job_title %} {{ company_insight }}{% else %} {{ industry_trend }}{% endif %}"
    assert render(text, PROSPECT, MARKERS).markers == ("company_insight",)
    assert render(text, {}, MARKERS).markers == ("industry_trend",)


@pytest.mark.parametrize(
    "text",
    [
        "{{ recent_achievement | upcase }}",
        "{% if recent_achievement %}x{% endif %}",
        "{{ first_name | append: company_insight }}",
        "{{ recent_achievement.size }}",
        "{% assign recent_achievement = 'x' %}",
    ],
)
def test_misused_marker_is_refused(text: str) -> None:
    with pytest.raises(TemplateError, match=r"marker '(recent_achievement|company_insight)'"):
        analyze(text, MARKERS)


def test_marker_altered_through_capture_is_refused_at_render() -> None:
    text = "{% capture s %}{{ recent_achievement }}{% endcapture %}{{ s | upcase }}"
    with pytest.raises(TemplateError, match="changed by a filter"):
        render(text, PROSPECT, MARKERS)


# --- analysis and validation ----------------------------------------------------------------------


def test_analyze_reports_variables_markers_and_required() -> None:
    text = (
        'Hi {{ first_name | default: "there" }}, {{ recent_achievement }} at {{ company_name }}.'
        "{% if job_title %} As {{ job_title }}.{% endif %}{% if notes %}!{% endif %}"
        '{% assign g = "x" %}{{ g }}{{ "a" | append: team_size }}'
    )
    info = analyze(text, MARKERS)
    assert info == TemplateInfo(
        variables=frozenset({"first_name", "company_name", "job_title", "notes", "team_size"}),
        markers=frozenset({"recent_achievement"}),
        required=frozenset({"company_name", "team_size"}),
    )


def test_validate_refuses_unknown_marker_with_hint() -> None:
    with pytest.raises(TemplateError) as err:
        validate("Hi {{ first_name }},\n{{ recent_acheivement }}", MARKERS, FIELDS)
    message = str(err.value)
    assert "unknown marker or field 'recent_acheivement'" in message
    assert "line 2" in message
    assert "did you mean 'recent_achievement'" in message
    assert "markers: company_insight, industry_trend, recent_achievement" in message
    assert "first_name" in message


def test_validate_accepts_custom_fields_and_markers() -> None:
    text = "Hi {{ first_name }}, {{ favourite_team }} {{ industry_trend }}"
    info = validate(text, MARKERS, [*FIELDS, "favourite_team"])
    assert info.variables == {"first_name", "favourite_team"}
    assert info.markers == {"industry_trend"}


def test_marker_list_is_extensible() -> None:
    markers = {**MARKERS, "podcast_mention": "a podcast they appeared on"}
    r = render("{{ podcast_mention }}", {}, markers)
    assert r.markers == ("podcast_mention",)
    # Without it in the list the same name is a plain (missing) variable, never a blank.
    assert render("{{ podcast_mention }}", {}, MARKERS).missing == ("podcast_mention",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi {{ first_name ", r"syntax error \(line 1, column 4\)"),
        ("ok\n{% if first_name %}Hi", r"syntax error.*\{% if %\} block is never closed"),
        ("line one\nline two {% bogus %}", r"syntax error \(line 2, column 13\).*unexpected tag 'bogus'"),
        ("{{ first_name | shout }}", r"unknown filter 'shout' \(line 1"),
        ("{% include 'other' %}", r"unexpected tag 'include'"),
        ("Hi\x00", "NUL"),
    ],
)
def test_syntax_errors_are_refused_with_where_and_what(text: str, expected: str) -> None:
    with pytest.raises(TemplateError, match=expected):
        validate(text, MARKERS, FIELDS)
    with pytest.raises(TemplateError):
        render(text, PROSPECT, MARKERS)


def test_validate_refuses_empty_template() -> None:
    with pytest.raises(TemplateError, match="empty"):
        validate("  \n", MARKERS, FIELDS)


def test_runaway_loop_is_stopped() -> None:
    with pytest.raises(TemplateError, match="render"):
        render("{% for i in (1..100000) %}x{% endfor %}", {}, MARKERS)


def test_load_markers(tmp_path: Path) -> None:
    markers = load_markers(DATA / "markers.json")
    assert {"recent_achievement", "company_insight", "industry_trend"} <= set(markers)
    assert all(d.strip() and "\n" not in d for d in markers.values())
    bad = tmp_path / "m.json"
    bad.write_text('{"Bad Name": "x"}', encoding="utf-8")
    with pytest.raises(ValueError, match="Bad Name"):
        load_markers(bad)
    bad.write_text('{"ok": ""}', encoding="utf-8")
    with pytest.raises(ValueError, match="description"):
        load_markers(bad)
    bad.write_text('{\n"ok": }', encoding="utf-8")
    with pytest.raises(ValueError, match="line 2"):
        load_markers(bad)


# --- size bands and selection ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "band"),
    [
        (None, None), (0, None), (1, "1-50"), (50, "1-50"), (51, "51-200"), (200, "51-200"),
        (201, "201-1000"), (1000, "201-1000"), (1001, "1001-5000"), (5000, "1001-5000"),
        (5001, "5001+"), (250_000, "5001+"),
    ],
)
def test_size_band_edges(size: int | None, band: str | None) -> None:
    assert size_band(size) == band
    # What the band is for: among templates aimed at every band, the selector picks this size's band,
    # and none of them when the size is unknown.
    library = [TemplateSpec(f"for {b}", "connection_request", b, size_band=b) for b in SIZE_BANDS]
    library.append(TemplateSpec("plain", "connection_request", "plain", is_default=True))
    chosen, _ = select_template("connection_request", None, size, library)
    assert chosen.name == (f"for {band}" if band else "plain")


LIBRARY = [
    TemplateSpec("cr_first", "connection_request", "first"),
    TemplateSpec("cr_default", "connection_request", "default", is_default=True),
    TemplateSpec("cr_saas", "connection_request", "saas", industry="SaaS"),
    TemplateSpec("cr_saas_big", "connection_request", "saas big", industry="saas", size_band="5001+"),
    TemplateSpec("cr_big", "connection_request", "big", size_band="5001+"),
    TemplateSpec("cr_fintech_big", "connection_request", "fintech big", industry="Fintech", size_band="1001-5000"),
    TemplateSpec("variant B", "connection_request", "b"),
    TemplateSpec("connection_request_safe", "connection_request_safe", "safe", is_default=True),
    TemplateSpec("fu_default", "follow_up_1", "fu", is_default=True),
]


@pytest.mark.parametrize(
    ("industry", "size", "assigned", "name", "reason"),
    [
        ("SaaS", 20, "variant B", "variant B", "experiment assignment: variant B"),
        (" saas ", 20, None, "cr_saas", "industry match:  saas "),
        ("SaaS", 9000, None, "cr_saas_big", "industry match: SaaS (size band 5001+)"),
        ("Fintech", 20, None, "cr_fintech_big", "industry match: Fintech"),
        ("Retail", 9000, None, "cr_big", "company-size band match: 5001+ employees"),
        ("Retail", 1500, None, "cr_default", "default template for connection_request"),
        (None, None, None, "cr_default", "default template for connection_request"),
    ],
)
def test_select_template_rules(
    industry: str | None, size: int | None, assigned: str | None, name: str, reason: str
) -> None:
    template, why = select_template("connection_request", industry, size, LIBRARY, assigned=assigned)
    assert template.name == name
    assert why == reason


def test_select_template_first_of_step_when_no_default() -> None:
    library = [t for t in LIBRARY if not t.is_default]
    template, why = select_template("connection_request", "Retail", 10, library)
    assert template.name == "cr_first"
    assert why == "first template for connection_request (no default is set)"


def test_select_template_assignment_from_another_step_is_skipped_and_said() -> None:
    template, why = select_template("connection_request", "SaaS", 10, LIBRARY, assigned="connection_request_safe")
    assert template.name == "cr_saas"
    assert why.startswith("experiment template 'connection_request_safe' is not a 'connection_request' template")
    assert why.endswith("industry match: SaaS")


def test_select_template_never_picks_a_safe_template_and_raises_for_unknown_step() -> None:
    only_safe = [t for t in LIBRARY if t.step.endswith("_safe")]
    with pytest.raises(LookupError, match="no template for step 'connection_request'"):
        select_template("connection_request", None, None, only_safe)
    with pytest.raises(LookupError, match="no template for step 'follow_up_9'"):
        select_template("follow_up_9", None, None, LIBRARY)


# --- shipped data ---------------------------------------------------------------------------------


def test_shipped_templates_all_validate_and_cover_every_step() -> None:
    markers = load_markers(DATA / "markers.json")
    library = load_library(DATA / "templates.json")
    steps = load_steps(DATA / "steps.json")
    assert 12 <= len(library) <= 20
    for template in library:
        validate(template.text, markers, FIELDS)
    by_name = {t.name: t for t in library}
    for name, step in steps.items():
        safe = by_name[step.safe_template]
        assert safe.step == f"{name}_safe"
        # A safe template needs no model and no data: it renders for a prospect with no fields at all.
        r = render(safe.text, {}, markers)
        assert not r.needs_writing and not r.needs_data, safe.name
        assert len(r.text) <= step.max_chars
        template, _why = select_template(name, None, None, library)
        assert template.is_default
    assert list(steps) == ["connection_request", "follow_up_1", "follow_up_2"]
    assert steps["connection_request"].max_chars == 300
    assert steps["connection_request"].max_chars_free == 200
    industries = {t.industry for t in library if t.step == "connection_request"}
    assert {"SaaS", "Fintech", "Healthcare", "Manufacturing"} <= industries
    assert any(t.size_band == "5001+" and t.step == "connection_request" for t in library)


def test_every_template_fits_its_cap_for_every_demo_prospect() -> None:
    markers = load_markers(DATA / "markers.json")
    steps = load_steps(DATA / "steps.json")
    library = load_library(DATA / "templates.json")
    rows = _demo_rows()
    for template in library:
        cap = steps[template.step.removesuffix("_safe")].max_chars
        for row in rows:
            r = render(template.text, row, markers)
            assert not r.needs_data, (template.name, row["email"], r.missing)
            message = fill_markers(r, {m: "x" * 60 for m in r.markers})
            assert len(message) <= cap, (template.name, row["email"], len(message))


def test_demo_prospects_cover_industries_bands_and_edge_cases() -> None:
    rows = _demo_rows()
    assert len(rows) >= 200
    assert list(rows[0]) == FIELDS
    industries = {r["industry"] for r in rows}
    expected = {"SaaS", "Fintech", "Healthcare", "Manufacturing", "Retail", "Logistics", "Education", "Cybersecurity"}
    assert expected <= industries
    bands = [size_band(int(r["company_size"])) for r in rows if r["company_size"]]
    assert set(bands) == set(SIZE_BANDS)
    over_1000 = sum(b in ("1001-5000", "5001+") for b in bands) / len(rows)
    assert 0.2 <= over_1000 <= 0.3
    long_news = [r for r in rows if 600 <= len(r["recent_news"]) <= 1500]
    assert 0.12 <= len(long_news) / len(rows) <= 0.18
    assert max(len(r["recent_news"]) for r in rows) <= 1500
    assert any(not r["recent_news"] for r in rows)
    assert {r["sender_account"] for r in rows} == {"alex-demo", "jordan-demo"}
    injections = [r for r in rows if "instruction" in (r["notes"] + r["recent_news"]).lower()]
    assert 3 <= len(injections) <= 5
    assert any(not r["first_name"].isascii() or not r["last_name"].isascii() for r in rows)
    for r in rows:
        assert r["email"].endswith(("@example.com", "@example.org")), r["email"]
        assert r["linkedin_url"].startswith("https://www.linkedin.com/in/") and r["linkedin_url"].endswith("-demo")
    assert len({r["email"] for r in rows}) == len(rows)


def test_templates_json_is_a_list_with_expected_keys() -> None:
    raw = json.loads((DATA / "templates.json").read_text(encoding="utf-8"))
    assert all(set(e) == {"name", "step", "industry", "size_band", "is_default", "text"} for e in raw)


def test_load_library_rejects_bad_entries(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps([{"name": "a", "step": "s", "text": "x", "size_band": "huge"}]), encoding="utf-8")
    with pytest.raises(ValueError, match="size_band"):
        load_library(path)
    path.write_text(json.dumps([{"name": "a", "step": "s", "text": "x"}] * 2), encoding="utf-8")
    with pytest.raises(ValueError, match="duplicate"):
        load_library(path)


# --- speed ----------------------------------------------------------------------------------------


def test_hundred_thousand_renders_of_a_cached_template() -> None:
    # Measured and printed, not asserted: timing belongs to bench/, this only shows it runs.
    text = load_library(DATA / "templates.json")[0].text
    markers = load_markers(DATA / "markers.json")
    start = time.perf_counter()
    last: Rendered | None = None
    for _ in range(100_000):
        last = render(text, PROSPECT, markers)
    elapsed = time.perf_counter() - start
    print(f"100,000 renders in {elapsed:.2f} s")
    assert last is not None and last.markers == ("recent_achievement",)
