"""The rule classifier (core.replies.rules), return dates, cleaning, metrics and the labelled set."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config import PROJECT_ROOT
from core.messages import prompts
from core.replies.categories import CATEGORIES
from core.replies.cleaning import MAX_REPLY_CHARS, clean_reply
from core.replies.dates import extract_return_date
from core.replies.evaluation import CategoryScore, evaluate, load_labelled
from core.replies.routing import load_routing_config
from core.replies.rules import RuleVerdict, classify_by_rules

LABELLED = PROJECT_ROOT / "data" / "replies_labelled.csv"
# A Friday; weekday-relative dates below are counted from it.
RECEIVED = date(2025, 3, 7)


def test_the_model_is_offered_exactly_the_categories_the_rules_use() -> None:
    # Not a retyped copy of CATEGORIES: the prompt's schema and instructions are checked against it, so a
    # category added to (or renamed in) one place but not the other fails here.
    assert len(CATEGORIES) == len(set(CATEGORIES)) == 8 and CATEGORIES[-1] == "unclear"
    assert prompts.CLASSIFY_SCHEMA["properties"]["category"]["enum"] == list(CATEGORIES)
    listed = re.search(r"exactly one category: ([a-z_, ]+)\.", prompts.SYSTEM["classify_reply"])
    assert listed is not None and listed.group(1).split(", ") == list(CATEGORIES)
    assert set(load_routing_config().routes) == set(CATEGORIES)


# Written for these tests only; test_fresh_examples_are_not_in_the_labelled_set checks that.
FRESH_EXAMPLES: list[tuple[str, str]] = [
    ("Sounds promising, I'd be happy to explore it with you.", "interested"),
    ("Yep, this is something we've been looking for!", "interested"),
    ("Absolutely 🙌", "interested"),
    ("Sehr gerne, das klingt gut.", "interested"),
    ("This could be handy for our recruiters to be honest", "interested"),
    ("Thanks, but we're not looking for anything like this.", "not_interested"),
    ("Nah, we'll pass.", "not_interested"),
    ("Yet another growth hack in my inbox. Riveting.", "not_interested"),
    ("Non merci, ça ne m'intéresse pas.", "not_interested"),
    ("Não, obrigada. Não precisamos disso.", "not_interested"),
    ("We already use a vendor for outreach and are happy with it.", "not_interested"),
    ("Could you email me a price list for 25 users?", "request_info"),
    ("Do you have references in the logistics industry?", "request_info"),
    ("What exactly does your tool do that Sales Navigator doesn't?", "request_info"),
    ("Schicken Sie mir bitte Unterlagen zu den Preisen.", "request_info"),
    ("¿Me puedes mandar más información sobre los precios?", "request_info"),
    ("Does Wednesday at 11am work for a quick call?", "schedule_call"),
    ("Let's schedule 30 minutes next week, my assistant will send an invite.", "schedule_call"),
    ("I'm free tomorrow afternoon, what works for you?", "schedule_call"),
    ("Vamos agendar uma ligação na sexta-feira?", "schedule_call"),
    ("On peut caler un rendez-vous mardi prochain ?", "schedule_call"),
    ("Automatic reply: I'm out of the office and will return on 2025-04-22.", "out_of_office"),
    ("I am on paternity leave until 30 June. Replies will be delayed.", "out_of_office"),
    ("Ich bin im Urlaub und ab dem 14. April wieder erreichbar.", "out_of_office"),
    ("Je suis en congé jusqu'au 18 avril inclus.", "out_of_office"),
    ("Estoy de vacaciones, vuelvo el 3 de mayo.", "out_of_office"),
    ("You've got the wrong person, I'm in customer support.", "wrong_person"),
    ("I don't work at Brightline any more, sorry!", "wrong_person"),
    ("Not my department. You should reach out to Tomas Novak in RevOps.", "wrong_person"),
    ("Ich bin nicht der richtige Ansprechpartner dafür.", "wrong_person"),
    ("Ya no trabajo en esa empresa.", "wrong_person"),
    ("Please unsubscribe me from all of this.", "do_not_contact"),
    ("Stop contacting me. Final warning.", "do_not_contact"),
    ("Never email me again.", "do_not_contact"),
    ("Veuillez me désinscrire de vos envois.", "do_not_contact"),
    ("Quero me descadastrar, por favor.", "do_not_contact"),
    ("Remove my contact details from your CRM please.", "do_not_contact"),
    ("??", "unclear"),
    ("who gave you my name", "unclear"),
    ("hm ok", "unclear"),
    ("Noted.", "unclear"),
    ("Huh", "unclear"),
]


@pytest.mark.parametrize(("text", "expected"), FRESH_EXAMPLES)
def test_fresh_examples_by_category(text: str, expected: str) -> None:
    verdict = classify_by_rules(text, RECEIVED)
    assert verdict.category == expected, verdict


def test_fresh_examples_cover_every_category_and_are_not_in_the_labelled_set() -> None:
    assert {category for _, category in FRESH_EXAMPLES} == set(CATEGORIES)
    labelled_texts = {clean_reply(text).casefold() for text, _, _ in load_labelled(LABELLED)}
    overlap = [text for text, _ in FRESH_EXAMPLES if clean_reply(text).casefold() in labelled_texts]
    assert overlap == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I'm interested, but unsubscribe me from the automated sequence", "do_not_contact"),
        ("Not interested. Please remove me from your list.", "do_not_contact"),
        ("I'm not interested.", "not_interested"),
        ("Not really interested at the moment", "not_interested"),
        ("Out of office until 3 March. For anything urgent contact Ella Brandt.", "out_of_office"),
        ("I'm not the right person and honestly not interested either.", "wrong_person"),
        ("Not interested, though feel free to send pricing for the file.", "not_interested"),
        ("Send me the deck and let's book a call for Thursday.", "schedule_call"),
        ("Sounds great, what does it cost?", "request_info"),
        ("Sounds great — Tuesday 3pm works.", "schedule_call"),
        ("I'm not sure I'm interested, can you send more details?", "request_info"),
        ("Please don't hesitate to send me more info.", "request_info"),
        ("I was on vacation, sorry for the delay — yes, interested!", "interested"),
    ],
)
def test_priority_conflicts(text: str, expected: str) -> None:
    assert classify_by_rules(text, RECEIVED).category == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sure", "interested"),
        ("Yes!", "interested"),
        ("sure, thanks", "interested"),
        ("👍", "interested"),
        ("No.", "not_interested"),
        ("nope 😅", "not_interested"),
        ("👎", "not_interested"),
        ("?", "unclear"),
        ("ok", "unclear"),
        ("...", "unclear"),
    ],
)
def test_one_word_answers(text: str, expected: str) -> None:
    assert classify_by_rules(text).category == expected


def test_sarcasm_is_not_interest() -> None:
    verdict = classify_by_rules("Oh great, another AI pitch. Just what I needed.")
    assert verdict.category == "not_interested"
    assert verdict.confidence >= 0.5


def test_empty_and_whitespace_are_unclear_with_zero_confidence() -> None:
    for text in ("", "   ", "\n\t \u200b\u200b", "\x00\x01"):
        verdict = classify_by_rules(text)
        assert verdict == RuleVerdict("unclear", 0.0, None, None, "")


def test_unmatched_text_is_unclear_and_flagged_for_a_person() -> None:
    verdict = classify_by_rules("The weather in Lisbon has been lovely this week.")
    assert verdict.category == "unclear"
    assert verdict.confidence < 0.5


def test_conflicting_signals_lower_confidence() -> None:
    clean = classify_by_rules("Please remove me from your list.")
    mixed = classify_by_rules("Please remove me from your list, although the pricing sounds interesting.")
    assert clean.category == mixed.category == "do_not_contact"
    assert mixed.confidence < clean.confidence


def test_evidence_is_a_phrase_from_the_reply() -> None:
    text = "Thanks for the message!  Unfortunately we are NOT interested at this time."
    verdict = classify_by_rules(text)
    assert verdict.category == "not_interested"
    assert verdict.evidence == "NOT interested"
    assert verdict.evidence in clean_reply(text)


def test_out_of_office_carries_the_return_date() -> None:
    verdict = classify_by_rules("I'm out of office until 3 March with limited access to email.", date(2025, 2, 20))
    assert verdict.category == "out_of_office"
    assert verdict.return_date == date(2025, 3, 3)
    assert verdict.referral is None
    undated = classify_by_rules("Currently on parental leave, replies will be slow.", date(2025, 2, 20))
    assert undated.category == "out_of_office"
    assert undated.return_date is None
    assert undated.confidence < verdict.confidence


def test_out_of_office_in_portuguese_with_date() -> None:
    verdict = classify_by_rules("Estou fora do escritório até 15 de março.", date(2025, 3, 1))
    assert verdict.category == "out_of_office"
    assert verdict.return_date == date(2025, 3, 15)


@pytest.mark.parametrize(
    ("text", "referral"),
    [
        ("I'm not the right person, try Maria Lopez (maria@acme.com)", "Maria Lopez (maria@acme.com)"),
        ("Wrong person. Please contact my colleague Jonas Berg instead.", "Jonas Berg"),
        ("Not my area — Priya Raman handles vendor decisions here.", "Priya Raman"),
        ("I'm no longer with the company, write to ops@northwind.example", "ops@northwind.example"),
        ("Wenden Sie sich bitte an Frau Katrin Vogel, sie ist zuständig.", "Katrin Vogel"),
        ("Not the right person, sorry.", None),
        ("I no longer work there. Please contact our head of sales.", None),
    ],
)
def test_wrong_person_referrals(text: str, referral: str | None) -> None:
    verdict = classify_by_rules(text)
    assert verdict.category == "wrong_person"
    assert verdict.referral == referral


@pytest.mark.parametrize(
    "text",
    [
        "Who handles billing at your company?",
        "Not sure yet, let me talk to my boss.",
        "Thanks, I will forward this to my team",
        "I will get back to you next week",
    ],
)
def test_questions_and_own_plans_are_not_referrals_or_absences(text: str) -> None:
    assert classify_by_rules(text, RECEIVED).category not in {"wrong_person", "out_of_office"}


def test_call_me_back_on_a_weekday_is_scheduling_not_an_absence() -> None:
    verdict = classify_by_rules("Can you call me back on Monday?", RECEIVED)
    assert verdict.category == "schedule_call"
    assert verdict.return_date is None


def test_verdict_fields_are_only_set_for_their_category() -> None:
    verdict = classify_by_rules("Sure, Tuesday 3 June at 2pm works. Maria Lopez will join too.", RECEIVED)
    assert verdict.category == "schedule_call"
    assert verdict.return_date is None
    assert verdict.referral is None


# --- extract_return_date -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "received", "expected"),
    [
        ("Back on 2025-04-22.", RECEIVED, date(2025, 4, 22)),
        ("Out until 12 March", RECEIVED, date(2025, 3, 12)),
        ("out till March 12th", RECEIVED, date(2025, 3, 12)),
        ("Returning on the 2nd of June", RECEIVED, date(2025, 6, 2)),
        ("Returning March 12, 2026", RECEIVED, date(2026, 3, 12)),
        # numeric dates are day-first when both readings are possible
        ("back on 12/03", RECEIVED, date(2025, 3, 12)),
        ("back on 04.05.", RECEIVED, date(2025, 5, 4)),
        # ...but month-first when the second number cannot be a month
        ("back on 03/25", RECEIVED, date(2025, 3, 25)),
        ("back on 12/03/2024", RECEIVED, date(2024, 3, 12)),
        ("back 1/4/26", RECEIVED, date(2026, 4, 1)),
        # a year-less date before the received day is next year's
        ("back on 2 January", RECEIVED, date(2026, 1, 2)),
        ("back on 05/01", RECEIVED, date(2026, 1, 5)),
        # weekday names count forward from the received day (a Friday); the same weekday is a week on
        ("back Monday", RECEIVED, date(2025, 3, 10)),
        ("back on Friday", RECEIVED, date(2025, 3, 14)),
        ("out sick, back tomorrow", RECEIVED, date(2025, 3, 8)),
        # explicit dates beat weekday names
        ("returning Monday 4 November", date(2024, 10, 30), date(2024, 11, 4)),
        # the date after a return cue wins; otherwise the last date named
        ("Away from 23 Dec to 6 Jan inclusive.", date(2024, 12, 20), date(2025, 1, 6)),
        ("Since 1 March I am away, I return on 20 March.", RECEIVED, date(2025, 3, 20)),
        ("Left on 8 March, until 14 March out of office", RECEIVED, date(2025, 3, 14)),
        # other languages
        ("Ich bin bis zum 21.03. nicht im Büro.", RECEIVED, date(2025, 3, 21)),
        ("ab dem 14. April wieder erreichbar", RECEIVED, date(2025, 4, 14)),
        ("absente jusqu'au 1er avril", RECEIVED, date(2025, 4, 1)),
        ("fuera de la oficina hasta el 7 de octubre de 2025", RECEIVED, date(2025, 10, 7)),
        ("de férias até 20 de março", RECEIVED, date(2025, 3, 20)),
        ("zurück am Montag", RECEIVED, date(2025, 3, 10)),
        # not dates
        ("out of office, back soon", RECEIVED, None),
        ("back on 31/02", RECEIVED, None),
        ("call me at 3.30pm", RECEIVED, None),
        ("version 2.5 ships soon", RECEIVED, None),
        ("", RECEIVED, None),
    ],
)
def test_extract_return_date(text: str, received: date, expected: date | None) -> None:
    assert extract_return_date(text, received) == expected


def test_extract_return_date_keeps_an_explicit_year_in_the_past() -> None:
    assert extract_return_date("back on 2020-01-02", RECEIVED) == date(2020, 1, 2)


def test_extract_return_date_without_received_uses_today_as_reference() -> None:
    found = extract_return_date("back on 12 March")
    assert found is not None
    assert (found.month, found.day) == (3, 12)
    assert extract_return_date("back on 12 March 2031") == date(2031, 3, 12)


# --- clean_reply ---------------------------------------------------------------------------------------


def test_clean_reply_strips_invisible_and_control_characters() -> None:
    text = "un\u200bsub\u200dscribe\x00 \u202eplease\ufeff\x07"
    assert clean_reply(text) == "unsubscribe please"
    assert classify_by_rules(text).category == "do_not_contact"


def test_clean_reply_on_binary_junk() -> None:
    junk = bytes(range(256)).decode("latin-1") * 10 + "\ud800\udfff\ue000\ufffd"
    cleaned = clean_reply(junk)
    assert all(ch.isprintable() for ch in cleaned)
    assert "  " not in cleaned
    assert classify_by_rules(junk).category == "unclear"


def test_clean_reply_collapses_whitespace() -> None:
    assert clean_reply("  Yes,\n\n  let's\ttalk \u00a0 soon  ") == "Yes, let's talk soon"


def test_clean_reply_cuts_a_megabyte_string() -> None:
    huge = "interested " * 100_000  # 1.1 MB
    cleaned = clean_reply(huge)
    assert len(cleaned) <= MAX_REPLY_CHARS
    assert cleaned.startswith("interested interested")
    assert classify_by_rules(huge).category == "interested"
    assert classify_by_rules(huge).confidence < 0.8  # long replies are less certain


def test_clean_reply_drops_quoted_history() -> None:
    text = (
        "Sure, send the deck.\n\n"
        "On Tue, 4 Mar 2025 at 10:12, Ana Petrovic <ana@example.com>\nwrote:\n"
        "> Hi! Would you be interested in a tool that unsubscribes nobody?\n"
        "> Best, Ana\n"
    )
    assert clean_reply(text) == "Sure, send the deck."
    assert classify_by_rules(text).category == "request_info"


def test_clean_reply_drops_angle_quoted_lines_and_original_message() -> None:
    text = "> please remove me\nNo thanks\n-----Original Message-----\nFrom: someone\nunsubscribe"
    assert clean_reply(text) == "No thanks"
    assert clean_reply("Am 3. März 2025 schrieb Lea Braun:\n> Hallo") == ""


def test_clean_reply_keeps_words_that_merely_start_with_on() -> None:
    assert clean_reply("On second thought, yes.\nLet's talk.") == "On second thought, yes. Let's talk."


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_clean_and_classify_never_raise(text: str) -> None:
    cleaned = clean_reply(text)
    assert len(cleaned) <= MAX_REPLY_CHARS
    assert cleaned == cleaned.strip()
    verdict = classify_by_rules(text, RECEIVED)
    assert verdict.category in CATEGORIES
    assert 0.0 <= verdict.confidence <= 1.0


# --- evaluate ------------------------------------------------------------------------------------------


def test_evaluate_on_a_hand_computed_example() -> None:
    pairs = [
        ("interested", "interested"),
        ("interested", "unclear"),
        ("not_interested", "not_interested"),
        ("unclear", "interested"),
        ("do_not_contact", "do_not_contact"),
    ]
    result = evaluate(pairs)
    assert result.n == 5
    assert result.accuracy == pytest.approx(3 / 5)
    assert result.per_category["interested"] == CategoryScore(0.5, 0.5, 2)
    assert result.per_category["not_interested"] == CategoryScore(1.0, 1.0, 1)
    assert result.per_category["unclear"] == CategoryScore(0.0, 0.0, 1)
    # nothing predicted and nothing true: undefined ratios are reported as 0.0
    assert result.per_category["schedule_call"] == CategoryScore(0.0, 0.0, 0)
    assert result.confusion["interested"]["unclear"] == 1
    assert result.confusion["unclear"]["interested"] == 1
    assert result.confusion["interested"]["interested"] == 1
    assert set(result.confusion) == set(CATEGORIES)
    assert all(set(row) == set(CATEGORIES) for row in result.confusion.values())
    assert sum(sum(row.values()) for row in result.confusion.values()) == 5


def test_evaluate_accepts_any_iterable_and_empty_input() -> None:
    assert evaluate(iter([("unclear", "unclear")])).accuracy == 1.0
    empty = evaluate([])
    assert (empty.n, empty.accuracy) == (0, 0.0)


def test_evaluate_rejects_unknown_categories_and_malformed_pairs() -> None:
    with pytest.raises(ValueError, match=r"pair 2: unknown predicted category 'maybe'"):
        evaluate([("interested", "interested"), ("interested", "maybe")])
    with pytest.raises(ValueError, match=r"pair 1: unknown true category 'Interested'"):
        evaluate([("Interested", "interested")])
    with pytest.raises(ValueError, match=r"pair 1: expected \(true, predicted\)"):
        evaluate([("interested",)])  # type: ignore[list-item]


# --- load_labelled and the shipped set -----------------------------------------------------------------


def test_labelled_set_is_large_and_balanced() -> None:
    rows = load_labelled(LABELLED)
    assert len(rows) >= 160
    counts = Counter(category for _, category, _ in rows)
    assert set(counts) == set(CATEGORIES)
    assert all(counts[category] >= 18 for category in CATEGORIES if category != "unclear")
    assert counts["unclear"] >= 15
    texts = [clean_reply(text).casefold() for text, _, _ in rows]
    assert len(set(texts)) == len(texts), "duplicate replies in the labelled set"
    assert any(received is not None for _, _, received in rows)
    assert any(received is None for _, _, received in rows)


def test_rule_classifier_accuracy_on_the_labelled_set() -> None:
    rows = load_labelled(LABELLED)
    result = evaluate((category, classify_by_rules(text, received).category) for text, category, received in rows)
    print(f"rule classifier accuracy on {result.n} labelled replies: {result.accuracy:.3f}")
    assert result.n == len(rows)
    assert result.accuracy >= 0.7


def test_labelled_out_of_office_rows_with_dates_get_return_dates() -> None:
    rows = load_labelled(LABELLED)
    ooo = [(text, received) for text, category, received in rows if category == "out_of_office"]
    dated = [extract_return_date(text, received) for text, received in ooo if received is not None]
    assert sum(found is not None for found in dated) >= len(ooo) // 2


def test_load_labelled_handles_quoting_bom_and_blank_dates(tmp_path: Path) -> None:
    path = tmp_path / "replies.csv"
    path.write_text(
        '\ufefftext,category,received\n"Yes, let\'s ""talk""\nsoon",schedule_call,2025-03-04\nNo.,not_interested,\n',
        encoding="utf-8",
    )
    assert load_labelled(path) == [
        ('Yes, let\'s "talk"\nsoon', "schedule_call", date(2025, 3, 4)),
        ("No.", "not_interested", None),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("text,label\nYes,interested\n", r"line 1: header must contain text, category, received; missing category"),
        ("text,category,received\nYes,interested,\nHm,maybe,\n", r"line 3: unknown category 'maybe'"),
        ('text,category,received\n"a\nb",interested,03/04/2025\n', r"line 3: received '03/04/2025' is not a date"),
    ],
)
def test_load_labelled_errors_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_labelled(path)


def test_load_labelled_rejects_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,category,received\nNão,not_interested,\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        load_labelled(path)


def test_every_category_and_action_has_a_label_in_words() -> None:
    from core.replies.categories import PENDING, label
    from core.replies.routing import ACTION_KINDS, action_label

    labels = [label(c) for c in (*CATEGORIES, PENDING)]
    assert len(set(labels)) == len(labels) and not any("_" in x for x in labels)
    assert label("do_not_contact") == "Do not contact" and label("someday") == "Someday"
    assert all(action_label(k) and "_" not in action_label(k) for k in ACTION_KINDS)
    assert action_label("send_template:info_follow_up") == "Send template info_follow_up" and action_label("") == ""
