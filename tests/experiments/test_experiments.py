"""Experiments: sticky hashed assignment, outcome import, statistics against statsmodels, promotion."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats as sps
from sqlmodel import func, select
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from core.app import App
from core.config import PROJECT_ROOT
from core.experiments.assignment import assigned_template, assigned_templates, bucket, stratum_of
from core.experiments.catalog import create_experiment, list_experiments
from core.experiments.decisions import promote, stop_experiment
from core.experiments.outcomes import OutcomeImportError, import_outcomes, record_reply_outcome, record_send
from core.experiments.planning import plan
from core.experiments.results import cumulative_rates, experiment_stats
from core.experiments.stats import sample_size_per_arm
from core.messages.library import add_template, get_template
from core.people.prospects import list_prospects
from core.replies.routing import load_routing_config
from core.store.db import session_scope
from core.store.models import Assignment, Experiment, ExperimentArm, Outcome, Prospect

CONTROL = "connection_request_default"
TEXT_B = "Hello {{ first_name }}, {{ recent_achievement }} Would be glad to connect with {{ company_name }}."
TEXT_C = "Hey {{ first_name }}, {{ recent_achievement }} Happy to connect and follow {{ company_name }}."


def _variants(app: App) -> None:
    add_template(app, "cr_b", "connection_request", TEXT_B)
    add_template(app, "cr_c", "connection_request", TEXT_C)


def _experiment(app: App, variants: tuple[str, ...] = ("cr_b",), **kwargs: object) -> int:
    if get_template(app, "cr_b") is None:
        _variants(app)
    exp = create_experiment(app, kwargs.pop("name", "test"), "connection_request", CONTROL, list(variants),
                               **kwargs)  # type: ignore[arg-type]
    assert exp.id is not None
    return exp.id


def _general_prospects(app: App) -> list[Prospect]:
    """Demo prospects that get the control today (so the general experiment assigns them)."""
    people = list_prospects(app, limit=1000)
    assigned = assigned_templates(app, [p.id for p in people if p.id is not None], "connection_request")
    return [p for p in people if p.id in assigned]


def _insert(app: App, exp_id: int, arm_name: str, sends: int, successes: int, start: datetime,
            flag: str = "positive") -> None:
    """Synthetic prospects with stored assignments and outcomes (for the statistics tests)."""
    with session_scope(app.engine) as s:
        arm = s.exec(select(ExperimentArm).where(ExperimentArm.experiment_id == exp_id,
                                                 ExperimentArm.name == arm_name)).one()
        base = s.exec(select(func.count()).select_from(Prospect)).one()
        people = [Prospect(identity=f"email:{arm_name}-{base + i}@example.com", first_name="P", company_name="C")
                  for i in range(sends)]
        s.add_all(people)
        s.flush()
        for i, p in enumerate(people):
            assert p.id is not None and arm.id is not None
            s.add(Assignment(experiment_id=exp_id, prospect_id=p.id, arm_id=arm.id))
            won = i < successes
            s.add(Outcome(experiment_id=exp_id, prospect_id=p.id, arm_id=arm.id,
                          sent_at=start + timedelta(days=i % 5), **{flag: won, "replied": won, "accepted": True}))


def _outcome_count(app: App) -> int:
    with session_scope(app.engine) as s:
        return int(s.exec(select(func.count()).select_from(Outcome)).one())


# ---- assignment ----

def test_bucket_is_a_pure_function_across_processes() -> None:
    identities = [f"li:https://www.linkedin.com/in/person-{i}" for i in range(200)]
    here = [bucket(7, ident, "alex", [1, 1, 1]) for ident in identities]
    assert here == [bucket(7, ident, "alex", [1, 1, 1]) for ident in identities]
    code = ("from core.experiments.assignment import bucket\n"
            "ids = [f'li:https://www.linkedin.com/in/person-{i}' for i in range(200)]\n"
            "print(','.join(str(bucket(7, x, 'alex', [1, 1, 1])) for x in ids))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT,
                         timeout=60, env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert out.returncode == 0, out.stderr
    assert [int(x) for x in out.stdout.strip().split(",")] == here
    assert len(set(here)) == 3
    # the experiment id and the stratum are part of the hash
    assert here != [bucket(8, ident, "alex", [1, 1, 1]) for ident in identities]
    assert here != [bucket(7, ident, "jordan", [1, 1, 1]) for ident in identities]


@pytest.mark.parametrize("weights", [[1, 1], [1, 1, 1], [2, 1, 1]])
def test_bucket_balance_on_100000_identities(weights: list[float]) -> None:
    counts = Counter(bucket(3, f"email:person{i}@example.com", "", weights) for i in range(100_000))
    observed = [counts[i] for i in range(len(weights))]
    expected = [100_000 * w / sum(weights) for w in weights]
    assert sps.chisquare(observed, expected).pvalue > 0.001


def test_bucket_balance_within_each_sender() -> None:
    senders = ["alex-demo", "jordan-demo", "sam-demo", ""]
    by_sender: dict[str, Counter[int]] = {s: Counter() for s in senders}
    for i in range(100_000):
        sender = senders[i % len(senders)]
        by_sender[sender][bucket(11, f"li:https://www.linkedin.com/in/p{i}", stratum_of(sender), [1, 1])] += 1
    for sender, counts in by_sender.items():
        assert sum(counts.values()) == 25_000
        assert sps.chisquare([counts[0], counts[1]]).pvalue > 0.001, sender
    assert stratum_of("  Alex-Demo ") == stratum_of("alex-demo")


def test_bucket_refuses_bad_weights() -> None:
    with pytest.raises(ValueError, match="positive"):
        bucket(1, "x", "", [1, 0])
    with pytest.raises(ValueError):
        bucket(1, "x", "", [])


def test_assignment_is_sticky_stored_and_equals_the_hash(demo_app: App) -> None:
    exp_id = _experiment(demo_app)
    everyone = list_prospects(demo_app, limit=1000)
    singles = {p.id: assigned_template(demo_app, p.id, "connection_request") for p in everyone[:40]}  # type: ignore[arg-type]
    people = _general_prospects(demo_app)  # the rest in one transaction
    assert 50 < len(people) < len(everyone)
    first = assigned_templates(demo_app, [p.id for p in everyone if p.id is not None], "connection_request")
    assert {pid: got for pid, got in singles.items() if got is not None} == {
        pid: first[pid] for pid in singles if pid in first}
    assert assigned_templates(demo_app, list(first), "connection_request") == first
    arm_names = [CONTROL, "cr_b"]
    for p in people:
        expected = arm_names[bucket(exp_id, p.identity, stratum_of(p.sender_account), [1.0, 1.0])]
        assert first[p.id] == (expected, expected)
    assert {arm for _, arm in first.values()} == set(arm_names)
    with session_scope(demo_app.engine) as s:
        assert s.exec(select(func.count()).select_from(Assignment)).one() == len(people)
        # moving the prospect to another sender later does not move it to another arm
        moved = s.get(Prospect, people[0].id)
        assert moved is not None
        moved.sender_account = "someone-else"
        s.add(moved)
    assert assigned_template(demo_app, people[0].id, "connection_request") == first[people[0].id]  # type: ignore[arg-type]
    assert assigned_template(demo_app, people[0].id, "follow_up_1") is None  # type: ignore[arg-type]
    with pytest.raises(LookupError, match="no prospect with id 1000000000"):
        assigned_templates(demo_app, [everyone[-1].id, 10**9], "connection_request")  # type: ignore[list-item]


def test_population_is_the_prospects_that_get_the_control(demo_app: App) -> None:
    _experiment(demo_app)
    saas = next(p for p in list_prospects(demo_app, limit=1000)
                if p.industry == "SaaS" and (p.company_size or 0) <= 5000)
    assert assigned_template(demo_app, saas.id, "connection_request") is None  # type: ignore[arg-type]
    add_template(demo_app, "cr_saas_b", "connection_request", "Hello {{ first_name }}, {{ company_insight }} "
                 "Glad to connect with SaaS teams.", industry="SaaS")
    exp = create_experiment(demo_app, "saas", "connection_request", "connection_request_saas", ["cr_saas_b"])
    assert exp.segment == "SaaS"
    got = assigned_template(demo_app, saas.id, "connection_request")  # type: ignore[arg-type]
    assert got is not None and got[0] in {"connection_request_saas", "cr_saas_b"}


def test_one_running_experiment_per_step_and_segment(demo_app: App) -> None:
    exp_id = _experiment(demo_app)
    with pytest.raises(ValueError, match="already running"):
        _experiment(demo_app, ("cr_c",), name="second")
    stop_experiment(demo_app, exp_id, "sam", "wrong copy")
    assert _experiment(demo_app, ("cr_c",), name="second") != exp_id


def test_create_refuses_bad_input_and_stores_nothing(demo_app: App) -> None:
    _variants(demo_app)
    cases = [
        (dict(step="nope"), ValueError, "unknown step"),
        (dict(variants=["missing"]), LookupError, "no template named 'missing'"),
        (dict(variants=["follow_up_1_default"]), ValueError, "is for step 'follow_up_1'"),
        (dict(variants=["connection_request_saas"]), ValueError, "aimed at industry 'SaaS'"),
        (dict(variants=["cr_b", "cr_b"]), ValueError, "more than once"),
        (dict(variants=[]), ValueError, "at least one variant"),
        (dict(metric="clicks"), ValueError, "unknown metric"),
        (dict(mde_abs=0.95), ValueError, "minimum detectable effect"),
        (dict(name="  "), ValueError, "name"),
    ]
    for change, error, message in cases:
        args = {"name": "x", "step": "connection_request", "control": CONTROL, "variants": ["cr_b"], **change}
        with pytest.raises(error, match=message):
            create_experiment(demo_app, args.pop("name"), args.pop("step"), args.pop("control"),  # type: ignore[arg-type]
                                 args.pop("variants"), **args)  # type: ignore[arg-type]
    assert list_experiments(demo_app) == []


def test_plan_is_holm_adjusted_and_counts_weeks() -> None:
    two = plan(0.10, 0.03, arms=2, sends_per_week=400)
    assert two.per_arm == sample_size_per_arm(0.10, 0.03) == 1769
    assert two.weeks == pytest.approx(1769 * 2 / 400)
    three = plan(0.10, 0.03, arms=3)
    assert three.per_arm == sample_size_per_arm(0.10, 0.03, n_treatments=2) > two.per_arm
    assert three.weeks is None and three.total == 3 * three.per_arm
    with pytest.raises(ValueError, match="2 to"):
        plan(0.1, 0.03, arms=1)


# ---- outcomes ----

def test_outcome_import_refuses_bad_rows_with_line_numbers_and_stores_nothing(demo_app: App) -> None:
    exp_id = _experiment(demo_app)
    people = _general_prospects(demo_app)
    outsider = next(p for p in list_prospects(demo_app, limit=1000) if p.id not in {q.id for q in people})
    lines = [
        "identity,sent_at,accepted,replied,positive",
        f"{people[0].identity},2026-01-05,1,1,1",                                   # 2 fine
        "li:https://www.linkedin.com/in/nobody-at-all,2026-01-05,1,0,0",            # 3 unknown
        f"{outsider.identity},2026-01-05,1,0,0",                                    # 4 not assigned
        f"{people[1].identity},2026-01-05,1,maybe,0",                               # 5 bad boolean
        f"{people[2].identity},05/01/2026,1,0,0",                                   # 6 bad date
        f"{people[0].identity},2026-01-06,1,0,0",                                   # 7 repeated
        f"{people[3].identity},2026-01-05,1,0,1",                                   # 8 positive without reply
        f"{people[4].identity},2099-01-05,1,0,0",                                   # 9 future
        f"{people[5].identity},2026-01-05,1,0",                                     # 10 short row
    ]
    with pytest.raises(OutcomeImportError) as caught:
        import_outcomes(demo_app, exp_id, "\n".join(lines).encode())
    problems = caught.value.problems
    by_line = {line: reason for line, reason in problems}
    assert set(by_line) == {3, 4, 5, 6, 7, 8, 9, 10}
    assert "unknown prospect" in by_line[3]
    assert "not assigned in experiment" in by_line[4] and "no arm" in by_line[4]
    assert "'maybe' is not a yes/no value" in by_line[5]
    assert "YYYY-MM-DD" in by_line[6]
    assert "already on line 2" in by_line[7]
    assert "positive is 1 but replied is 0" in by_line[8]
    assert "future" in by_line[9]
    assert "expected 5 columns" in by_line[10]
    message = str(caught.value)
    assert "\n" not in message and "nothing was stored" in message and "line 3:" in message
    assert _outcome_count(demo_app) == 0


def test_outcome_import_refuses_a_header_it_cannot_use(demo_app: App) -> None:
    exp_id = _experiment(demo_app, metric="reply_rate")
    with pytest.raises(OutcomeImportError, match="no prospect column"):
        import_outcomes(demo_app, exp_id, b"name,sent_at,replied\nx,2026-01-01,1\n")
    with pytest.raises(OutcomeImportError, match="no replied column"):
        import_outcomes(demo_app, exp_id, b"email,sent_at,positive\na@example.com,2026-01-01,1\n")
    with pytest.raises(OutcomeImportError, match="no sent date column"):
        import_outcomes(demo_app, exp_id, b"email,replied\na@example.com,1\n")
    with pytest.raises(OutcomeImportError, match="no rows"):
        import_outcomes(demo_app, exp_id, b"email,sent_at,replied\n")
    with pytest.raises(LookupError, match="no experiment"):
        import_outcomes(demo_app, 999, b"email,sent_at,replied\na@example.com,2026-01-01,1\n")
    assert _outcome_count(demo_app) == 0


def test_outcome_import_resolves_identity_columns_and_upserts(demo_app: App) -> None:
    exp_id = _experiment(demo_app)
    people = [p for p in _general_prospects(demo_app) if p.email and p.linkedin_url][:6]
    rows = ["LinkedIn URL;E-mail;Sent Date;Accepted;Replied;Positive"]
    for i, p in enumerate(people):
        url = p.linkedin_url.upper().replace("HTTPS://WWW.", "http://") + "/" if i % 2 else ""
        email = "" if i % 2 else p.email.upper()
        rows.append(f"{url};{email};2026-01-0{i + 1};yes;{'yes' if i < 3 else 'no'};{'true' if i < 2 else ''}")
    report = import_outcomes(demo_app, exp_id, "\r\n".join(rows).encode())
    assert (report.rows, report.inserted, report.updated, report.delimiter) == (6, 6, 0, ";")
    assert sum(report.by_arm.values()) == 6
    stats = experiment_stats(demo_app, exp_id)
    assert stats.total_sends == 6 and sum(a.successes for a in stats.arms) == 2

    # the same prospects again, by stored identity: updated, not duplicated; a missing flag column keeps its value
    again = ["identity,sent_at,positive"] + [f"{p.identity},2026-02-01T09:30:00Z,1" for p in people[:3]]
    report = import_outcomes(demo_app, exp_id, "\n".join(again).encode())
    assert (report.inserted, report.updated) == (0, 3)
    assert _outcome_count(demo_app) == 6
    with session_scope(demo_app.engine) as s:
        row = s.exec(select(Outcome).where(Outcome.prospect_id == people[2].id)).one()
        assert row.positive and row.replied and row.accepted
        assert row.sent_at == datetime(2026, 2, 1, 9, 30, tzinfo=UTC)


def test_reply_and_send_outcomes(demo_app: App) -> None:
    exp_id = _experiment(demo_app)
    person = _general_prospects(demo_app)[0]
    assert person.id is not None
    sent = datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert record_send(demo_app, person.id, "connection_request", sent) == exp_id
    assert record_send(demo_app, person.id, "follow_up_1", sent) is None
    assert record_reply_outcome(demo_app, person.id, True, sent + timedelta(days=1)) == [exp_id]
    record_reply_outcome(demo_app, person.id, False, sent + timedelta(days=2))  # an out-of-office later
    with session_scope(demo_app.engine) as s:
        row = s.exec(select(Outcome).where(Outcome.prospect_id == person.id)).one()
        assert (row.replied, row.accepted, row.positive, row.sent_at) == (True, True, True, sent)
    record_reply_outcome(demo_app, person.id, False, sent + timedelta(days=3), replace=True)
    with session_scope(demo_app.engine) as s:
        assert s.exec(select(Outcome.positive).where(Outcome.prospect_id == person.id)).one() is False
    outsider = next(p for p in list_prospects(demo_app, limit=1000) if p.industry == "SaaS")
    assert record_reply_outcome(demo_app, outsider.id, True, sent) == []  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone"):
        record_reply_outcome(demo_app, person.id, True, datetime(2026, 3, 1))
    # which categories are positive is the routing table's to say (one home), and it says these
    assert load_routing_config(demo_app.settings.data_dir).positive == {"interested", "schedule_call", "request_info"}


# ---- results ----

def test_empty_experiment_is_an_empty_state(demo_app: App) -> None:
    exp_id = _experiment(demo_app)
    result = experiment_stats(demo_app, exp_id)
    assert result.verdict.code == "no_data" and result.withheld
    assert [a.sends for a in result.arms] == [0, 0] and result.srm_p is None
    assert result.planned_per_arm == 1769 and cumulative_rates(demo_app, exp_id) == []
    with pytest.raises(LookupError):
        experiment_stats(demo_app, 12345)


def test_stats_match_statsmodels_on_a_stored_experiment(app: App) -> None:
    from core.messages.library import seed_templates

    seed_templates(app)
    exp_id = _experiment(app, ("cr_b", "cr_c"), metric="reply_rate")
    start = datetime(2026, 1, 5, tzinfo=UTC)
    counts = {CONTROL: (400, 40), "cr_b": (390, 62), "cr_c": (410, 37)}
    for arm, (n, k) in counts.items():
        _insert(app, exp_id, arm, n, k, start, flag="replied")
    result = experiment_stats(app, exp_id)
    arms = {a.name: a for a in result.arms}
    assert [a.name for a in result.arms] == [CONTROL, "cr_b", "cr_c"]
    n_c, k_c = counts[CONTROL]
    raw = []
    for name, (n, k) in counts.items():
        low, high = proportion_confint(k, n, method="wilson")
        assert (arms[name].sends, arms[name].successes) == (n, k)
        assert arms[name].rate == pytest.approx(k / n)
        assert arms[name].ci_low == pytest.approx(low) and arms[name].ci_high == pytest.approx(high)
        if name != CONTROL:
            _, p = proportions_ztest(np.array([k, k_c]), np.array([n, n_c]))
            assert arms[name].p_value == pytest.approx(p)
            raw.append(p)
    holm = multipletests(raw, method="holm")[1]
    assert arms["cr_b"].p_holm == pytest.approx(holm[0]) and arms["cr_c"].p_holm == pytest.approx(holm[1])
    assert result.srm_p == pytest.approx(sps.chisquare([400, 390, 410]).pvalue)
    assert 0.9 < arms["cr_b"].chance_to_beat_control <= 1
    planned = sample_size_per_arm(0.10, 0.03, n_treatments=2)
    assert result.planned_per_arm == planned and result.verdict.code == "collecting"
    assert f"of {planned:,} planned" in result.verdict.text

    series = cumulative_rates(app, exp_id)
    last = {r.arm: r for r in series}
    assert {a: (r.sends, r.successes) for a, r in last.items()} == counts
    for arm in counts:
        sends = [r.sends for r in series if r.arm == arm]
        assert sends == sorted(sends) and len(sends) == 5


def test_metric_chooses_the_success_flag(app: App) -> None:
    from core.messages.library import seed_templates

    seed_templates(app)
    exp_id = _experiment(app, metric="acceptance_rate")
    _insert(app, exp_id, CONTROL, 50, 5, datetime(2026, 1, 5, tzinfo=UTC))
    result = experiment_stats(app, exp_id)
    # _insert marks every send accepted: the acceptance rate is 100%, whatever the positive flag says
    assert result.arms[0].successes == 50 and result.metric_label == "acceptance rate"


# ---- decisions ----

def test_promote_refused_while_withheld_unless_forced(demo_app: App) -> None:
    exp_id = _experiment(demo_app)
    with pytest.raises(ValueError, match="verdict is withheld"):
        promote(demo_app, exp_id, "cr_b", "sam")
    with pytest.raises(ValueError, match="who decides"):
        promote(demo_app, exp_id, "cr_b", "  ", force=True)
    with pytest.raises(LookupError, match="no arm"):
        promote(demo_app, exp_id, "cr_z", "sam", force=True)
    assert get_template(demo_app, CONTROL).is_default  # type: ignore[union-attr]
    decision = promote(demo_app, exp_id, "cr_b", "Sam Lee", force=True)
    assert decision.forced is True and "withheld" in decision.override_reason
    assert decision.decided_by == "Sam Lee" and decision.previous_default == [CONTROL]
    assert get_template(demo_app, "cr_b").is_default  # type: ignore[union-attr]
    assert not get_template(demo_app, CONTROL).is_default  # type: ignore[union-attr]
    assert get_template(demo_app, "connection_request_safe").is_default  # type: ignore[union-attr]
    with session_scope(demo_app.engine) as s:
        exp = s.get(Experiment, exp_id)
        assert exp is not None and exp.status == "stopped" and exp.decision["arm"] == "cr_b"
    with pytest.raises(ValueError, match="already stopped"):
        promote(demo_app, exp_id, "cr_b", "Sam Lee", force=True)


def test_promote_a_clear_winner(app: App) -> None:
    from core.messages.library import seed_templates

    seed_templates(app)
    exp_id = _experiment(app, ("cr_b", "cr_c"), baseline_rate=0.10, mde_abs=0.25)
    planned = experiment_stats(app, exp_id).planned_per_arm
    start = datetime(2026, 1, 5, tzinfo=UTC)
    n = planned + 10
    _insert(app, exp_id, CONTROL, n, n // 10, start)
    _insert(app, exp_id, "cr_b", n, n // 2, start)
    _insert(app, exp_id, "cr_c", n, n // 9, start)
    result = experiment_stats(app, exp_id)
    assert result.verdict.code == "winner:cr_b" and not result.withheld
    assert result.verdict.text.startswith("cr_b beats control") and "positive-reply rate" in result.verdict.text
    with pytest.raises(ValueError, match="favours 'cr_b'"):
        promote(app, exp_id, "cr_c", "sam")
    decision = promote(app, exp_id, "cr_b", "sam")
    assert decision.forced is False and decision.verdict == "winner:cr_b"
    assert [a.sends for a in decision.arms] == [n, n, n]
    listed = list_experiments(app)[0]
    assert listed.status == "stopped" and listed.decision.template == "cr_b" and listed.sends == 3 * n


def test_variants_compete_only_within_the_control_segment() -> None:
    from core.experiments.catalog import same_segment, variant_candidates
    from core.store.models import Template

    templates = [Template(name="ctl", step="s", text="", industry="SaaS"),
                 Template(name="saas_b", step="s", text="", industry=" saas "),
                 Template(name="fin", step="s", text="", industry="Fintech"),
                 Template(name="plain", step="s", text="", industry="")]
    assert variant_candidates(templates, "ctl") == ["saas_b"]
    assert variant_candidates(templates, "plain") == []
    assert variant_candidates(templates, "missing") == []
    assert same_segment(None, "") and not same_segment("SaaS", None)
