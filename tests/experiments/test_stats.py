"""Tests for core.experiments.stats: agreement with statsmodels/scipy on random tables, edge cases, verdicts, CSV."""

from __future__ import annotations

import gc
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from scipy.special import betaln
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from core.experiments.stats import (
    ArmCounts,
    analyze,
    analyze_csv,
    beta_chance_to_beat,
    holm,
    sample_ratio_pvalue,
    sample_size_per_arm,
    two_proportion_pvalue,
    weeks_to_sample,
    wilson_interval,
)


def random_pairs(seed: int, count: int = 200, max_n: int = 5000) -> list[tuple[int, int]]:
    """(successes, n) pairs with n >= 1, forcing some 0-success and all-success rows."""
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(count):
        n = int(rng.integers(1, max_n))
        s = 0 if i % 17 == 0 else n if i % 19 == 0 else int(rng.binomial(n, rng.uniform(0.01, 0.5)))
        pairs.append((s, n))
    return pairs


def exact_chance_to_beat(s_a: int, n_a: int, s_c: int, n_c: int) -> float:
    """Closed form of P(p_a > p_c) for integer Beta parameters (Evan Miller's sum), an independent check."""
    a_a, b_a, a_c, b_c = 1 + s_a, 1 + n_a - s_a, 1 + s_c, 1 + n_c - s_c
    total = sum(
        math.exp(betaln(a_a + i, b_c + b_a) - math.log(b_c + i) - betaln(1 + i, b_c) - betaln(a_a, b_a))
        for i in range(a_c)
    )
    return 1 - total


# --- agreement with the reference libraries ---------------------------------------------------------


def test_wilson_matches_statsmodels_on_random_pairs() -> None:
    for s, n in random_pairs(seed=1):
        low, high = wilson_interval(s, n)
        ref_low, ref_high = proportion_confint(s, n, alpha=0.05, method="wilson")
        assert low == pytest.approx(max(ref_low, 0.0), abs=1e-12)
        assert high == pytest.approx(min(ref_high, 1.0), abs=1e-12)
        assert 0.0 <= low <= s / n <= high <= 1.0


def test_wilson_other_alpha_matches_statsmodels() -> None:
    low, high = wilson_interval(13, 140, alpha=0.1)
    ref = proportion_confint(13, 140, alpha=0.1, method="wilson")
    assert (low, high) == pytest.approx(ref, abs=1e-12)
    assert high - low < wilson_interval(13, 140)[1] - wilson_interval(13, 140)[0]


def test_pvalues_match_proportions_ztest_on_random_tables() -> None:
    a, b = random_pairs(seed=2), random_pairs(seed=3)
    compared = 0
    for (s1, n1), (s2, n2) in zip(a, b, strict=True):
        p = two_proportion_pvalue(s1, n1, s2, n2)
        if s1 + s2 in (0, n1 + n2):
            assert p is None
            continue
        _, ref = proportions_ztest([s1, s2], [n1, n2], alternative="two-sided")
        assert p == pytest.approx(float(ref), rel=1e-12, abs=1e-300)
        compared += 1
    assert compared > 150


def test_pvalue_known_value_and_symmetry() -> None:
    p = two_proportion_pvalue(260, 2000, 200, 2000)
    assert p == pytest.approx(0.00294, abs=1e-5)
    assert two_proportion_pvalue(200, 2000, 260, 2000) == pytest.approx(p)


def test_holm_matches_multipletests_on_random_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    # multipletests runs gc.collect() on every call; skipping it keeps this test fast, results unchanged.
    monkeypatch.setattr(gc, "collect", lambda *args: 0)
    rng = np.random.default_rng(4)
    for _ in range(200):
        raw = [float(x) for x in rng.uniform(0, 0.2, size=int(rng.integers(1, 8)))]
        if len(raw) > 2:
            raw[1] = raw[0]  # ties
        ours = holm(raw)
        ref = multipletests(raw, method="holm")[1]
        assert ours == pytest.approx(list(ref), abs=1e-15)


def test_holm_leaves_none_out_of_the_family() -> None:
    ours = holm([0.01, None, 0.04, None])
    ref = multipletests([0.01, 0.04], method="holm")[1]
    assert ours[1] is None and ours[3] is None
    assert [ours[0], ours[2]] == pytest.approx(list(ref))
    assert holm([None, None]) == [None, None]
    assert holm([]) == []


def test_holm_rejects_values_outside_unit_interval() -> None:
    with pytest.raises(ValueError, match="position 1"):
        holm([0.2, 1.5])
    with pytest.raises(ValueError, match="between 0 and 1"):
        holm([float("nan")])


def test_chance_to_beat_matches_closed_form_on_random_tables() -> None:
    rng = np.random.default_rng(5)
    for _ in range(40):
        n_a, n_c = int(rng.integers(0, 3000)), int(rng.integers(0, 3000))
        s_a, s_c = int(rng.binomial(n_a, 0.12)), int(rng.binomial(n_c, 0.1))
        prob, _ = beta_chance_to_beat(s_a, n_a, s_c, n_c)
        assert prob == pytest.approx(exact_chance_to_beat(s_a, n_a, s_c, n_c), abs=1e-8)


@pytest.mark.parametrize(
    ("s_a", "n_a", "s_c", "n_c"),
    [(130, 1000, 100, 1000), (0, 10, 5, 10), (3, 10, 5000, 100000), (0, 0, 0, 0), (40, 40, 2, 40)],
)
def test_chance_to_beat_and_loss_match_monte_carlo(s_a: int, n_a: int, s_c: int, n_c: int) -> None:
    rng = np.random.default_rng(6)
    draws = 1_000_000
    arm = rng.beta(1 + s_a, 1 + n_a - s_a, draws)
    ctl = rng.beta(1 + s_c, 1 + n_c - s_c, draws)
    mc_prob = float((arm > ctl).mean())
    loss_samples = np.maximum(ctl - arm, 0.0)
    mc_loss = float(loss_samples.mean())
    prob, loss = beta_chance_to_beat(s_a, n_a, s_c, n_c)
    # Five Monte Carlo standard errors (plus a floor) keep this deterministic test honest but not flaky.
    assert abs(prob - mc_prob) <= 5 * math.sqrt(mc_prob * (1 - mc_prob) / draws) + 1e-5
    assert abs(loss - mc_loss) <= 5 * float(loss_samples.std()) / math.sqrt(draws) + 1e-7


def test_chance_to_beat_is_complementary() -> None:
    forward, loss_fwd = beta_chance_to_beat(120, 1000, 100, 1000)
    backward, loss_back = beta_chance_to_beat(100, 1000, 120, 1000)
    assert forward + backward == pytest.approx(1.0, abs=1e-9)
    # E[max(c - a, 0)] - E[max(a - c, 0)] = E[c] - E[a]
    assert loss_fwd - loss_back == pytest.approx(101 / 1002 - 121 / 1002, abs=1e-9)


def test_srm_matches_scipy_chisquare() -> None:
    rng = np.random.default_rng(7)
    for _ in range(100):
        k = int(rng.integers(2, 6))
        sends = [int(x) for x in rng.integers(0, 3000, size=k)]
        if sum(sends) == 0:
            continue
        assert sample_ratio_pvalue(sends) == pytest.approx(sps.chisquare(sends).pvalue, rel=1e-12)
        weights = [float(w) for w in rng.uniform(0.5, 3, size=k)]
        expected = np.array(weights) / sum(weights) * sum(sends)
        ref = sps.chisquare(sends, f_exp=expected).pvalue
        assert sample_ratio_pvalue(sends, weights) == pytest.approx(ref, rel=1e-9, abs=1e-300)


def test_srm_undefined_and_invalid_inputs() -> None:
    assert sample_ratio_pvalue([0, 0, 0]) is None
    assert sample_ratio_pvalue([10]) is None
    with pytest.raises(ValueError, match="negative"):
        sample_ratio_pvalue([10, -1])
    with pytest.raises(ValueError, match="2 allocation weights for 3 arms"):
        sample_ratio_pvalue([1, 2, 3], [1, 1])
    with pytest.raises(ValueError, match="positive"):
        sample_ratio_pvalue([1, 2], [1, 0])


def test_lift_interval_is_newcombe_from_wilson_limits() -> None:
    rng = np.random.default_rng(8)
    for _ in range(50):
        n_a, n_c = int(rng.integers(1, 3000)), int(rng.integers(1, 3000))
        s_a, s_c = int(rng.binomial(n_a, 0.13)), int(rng.binomial(n_c, 0.1))
        result = analyze([ArmCounts("A", n_c, s_c), ArmCounts("B", n_a, s_a)], "A")
        arm = result.arms[1]
        p_a, p_c = s_a / n_a, s_c / n_c
        l_a, u_a = wilson_interval(s_a, n_a)
        l_c, u_c = wilson_interval(s_c, n_c)
        low = p_a - p_c - math.sqrt((p_a - l_a) ** 2 + (u_c - p_c) ** 2)
        high = p_a - p_c + math.sqrt((u_a - p_a) ** 2 + (p_c - l_c) ** 2)
        assert arm.lift_abs_ci == pytest.approx((low, high), abs=1e-10)


# --- edge cases ---------------------------------------------------------------------------------------


def test_edge_counts_give_no_division_by_zero() -> None:
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0
    assert two_proportion_pvalue(0, 10, 0, 20) is None
    assert two_proportion_pvalue(10, 10, 20, 20) is None
    assert two_proportion_pvalue(0, 0, 3, 10) is None
    assert two_proportion_pvalue(0, 10, 10, 10) == pytest.approx(proportions_ztest([0, 10], [10, 10])[1])
    with pytest.raises(ValueError, match="at least one send"):
        wilson_interval(0, 0)


@pytest.mark.parametrize(
    ("s1", "n1", "message"), [(-1, 10, "negative"), (3, -1, "negative"), (11, 10, "cannot exceed")]
)
def test_bad_counts_are_refused(s1: int, n1: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        two_proportion_pvalue(s1, n1, 1, 10)
    with pytest.raises(ValueError, match=message):
        beta_chance_to_beat(s1, n1, 1, 10)


def test_analyze_all_zero_successes_and_all_successes() -> None:
    zero = analyze([ArmCounts("A", 50, 0), ArmCounts("B", 50, 0)], "A")
    assert zero.arms[1].rate == 0.0 and zero.arms[1].lift_rel is None
    assert zero.arms[1].p_value is None and zero.arms[1].p_holm is None
    assert zero.arms[1].chance_to_beat_control == pytest.approx(0.5, abs=1e-9)
    assert zero.verdict.code == "no_difference"
    full = analyze([ArmCounts("A", 50, 50), ArmCounts("B", 50, 50)], "A")
    assert full.arms[1].lift_rel == 0.0 and full.arms[1].p_value is None
    assert full.arms[0].ci_high == 1.0


def test_analyze_one_arm_empty_withholds_and_leaves_comparisons_undefined() -> None:
    result = analyze([ArmCounts("A", 5, 1), ArmCounts("B", 0, 0)], "A")
    assert not result.srm_flag
    empty = result.arms[1]
    assert (empty.rate, empty.ci_low, empty.lift_abs, empty.p_value, empty.chance_to_beat_control) == (
        None,
        None,
        None,
        None,
        None,
    )
    assert result.verdict.code == "collecting"
    assert "'B'" in result.verdict.text
    empty_control = analyze([ArmCounts("A", 0, 0), ArmCounts("B", 5, 1)], "A")
    assert empty_control.arms[1].rate == 0.2 and empty_control.arms[1].lift_abs is None
    assert empty_control.verdict.code == "collecting"


# --- sample size --------------------------------------------------------------------------------------


def classic_pooled_n(p1: float, p2: float, alpha: float, power: float) -> float:
    z_a, z_b = sps.norm.isf(alpha / 2), sps.norm.isf(1 - power)
    p_bar = (p1 + p2) / 2
    root = z_a * math.sqrt(2 * p_bar * (1 - p_bar)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return root**2 / (p2 - p1) ** 2


def test_sample_size_for_ten_to_thirteen_percent_is_about_1800() -> None:
    n = sample_size_per_arm(0.10, 0.03)
    assert 1700 <= n <= 1900
    assert n == 1769  # Cohen's h through NormalIndPower; the classic pooled formula gives 1,774
    assert abs(n - classic_pooled_n(0.10, 0.13, 0.05, 0.8)) < 10


def test_sample_size_grows_with_treatments_power_and_smaller_effects() -> None:
    base = sample_size_per_arm(0.10, 0.03)
    assert sample_size_per_arm(0.10, 0.03, n_treatments=3) > sample_size_per_arm(0.10, 0.03, n_treatments=2)
    assert sample_size_per_arm(0.10, 0.03, n_treatments=2) > base
    assert sample_size_per_arm(0.10, 0.03, power=0.9) > base
    assert sample_size_per_arm(0.10, 0.02) > base
    assert sample_size_per_arm(0.10, 0.03, two_sided=False) < base
    assert sample_size_per_arm(0.13, -0.03) == base  # Cohen's h is symmetric in the two rates


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"baseline": 0.0, "mde_abs": 0.03}, "baseline"),
        ({"baseline": 0.1, "mde_abs": 0.0}, "non-zero"),
        ({"baseline": 0.95, "mde_abs": 0.1}, "inside"),
        ({"baseline": 0.1, "mde_abs": 0.03, "power": 1.0}, "power"),
        ({"baseline": 0.1, "mde_abs": 0.03, "alpha": 0.0}, "alpha"),
        ({"baseline": 0.1, "mde_abs": 0.03, "n_treatments": 0}, "n_treatments"),
    ],
)
def test_sample_size_refuses_bad_plans(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sample_size_per_arm(**kwargs)  # type: ignore[arg-type]


def test_weeks_to_sample() -> None:
    assert weeks_to_sample(1800, 2, 400) == pytest.approx(9.0)
    assert weeks_to_sample(0, 3, 100) == 0.0
    with pytest.raises(ValueError, match="per week"):
        weeks_to_sample(1800, 2, 0)
    with pytest.raises(ValueError, match="at least one arm"):
        weeks_to_sample(1800, 0, 100)


# --- verdicts -----------------------------------------------------------------------------------------


def test_verdict_no_data() -> None:
    result = analyze([ArmCounts("A", 0, 0), ArmCounts("B", 0, 0)], "A", planned_per_arm=1800)
    assert result.verdict.code == "no_data"
    assert result.srm_p is None and result.srm_flag is False


def test_verdict_collecting_names_progress() -> None:
    result = analyze([ArmCounts("A", 420, 40), ArmCounts("B", 412, 60)], "A", planned_per_arm=1800)
    assert result.verdict.code == "collecting"
    assert result.verdict.text == "Withheld: 412 of 1,800 planned sends per arm reached (23%)."
    # The numbers are still there for a person who wants to look; only the verdict is withheld.
    assert result.arms[1].p_value is not None


def test_verdict_collecting_never_rounds_up_to_complete() -> None:
    result = analyze([ArmCounts("A", 1800, 180), ArmCounts("B", 1799, 180)], "A", planned_per_arm=1800)
    assert result.verdict.code == "collecting" and "(99%)" in result.verdict.text


def test_verdict_srm_overrides_everything_but_no_data() -> None:
    result = analyze([ArmCounts("A", 2000, 200), ArmCounts("B", 1000, 200)], "A", planned_per_arm=800)
    assert result.srm_flag and result.srm_p is not None and result.srm_p < 0.001
    assert result.verdict.code == "srm"
    assert "sample-ratio mismatch" in result.verdict.text
    # The same split is fine when it was planned 2:1.
    planned = analyze(
        [ArmCounts("A", 2000, 200), ArmCounts("B", 1000, 200)], "A", planned_per_arm=800, weights=[2, 1]
    )
    assert not planned.srm_flag and planned.verdict.code == "winner:B"


def test_verdict_winner_picks_best_significant_arm() -> None:
    arms = [
        ArmCounts("A", 2000, 200),
        ArmCounts("B", 2000, 262),
        ArmCounts("C", 2000, 300),
        ArmCounts("D", 2000, 150),
    ]
    result = analyze(arms, "A", planned_per_arm=1800)
    assert result.verdict.code == "winner:C"
    assert result.verdict.text.startswith("C beats control A: reply rate 15.0% vs 10.0%")
    assert [a.name for a in result.arms] == ["A", "B", "C", "D"]
    holm_ref = multipletests([a.p_value for a in result.arms[1:]], method="holm")[1]
    assert [a.p_holm for a in result.arms[1:]] == pytest.approx(list(holm_ref))


def test_verdict_control_best() -> None:
    result = analyze([ArmCounts("A", 2000, 200), ArmCounts("B", 2000, 150)], "A")
    assert result.verdict.code == "control_best"
    assert "B is significantly worse" in result.verdict.text


def test_verdict_no_difference_and_holm_can_withdraw_a_raw_win() -> None:
    # B alone would be significant (raw p ~ 0.04) but Holm over three arms lifts it above 0.05.
    arms = [ArmCounts("A", 2000, 200), ArmCounts("B", 2000, 243), ArmCounts("C", 2000, 201)]
    arms.append(ArmCounts("D", 2000, 199))
    result = analyze(arms, "A")
    b = result.arms[1]
    assert b.p_value is not None and b.p_value < 0.05
    assert b.p_holm is not None and b.p_holm >= 0.05
    assert result.verdict.code == "no_difference"


def test_control_is_listed_first_whatever_the_input_order() -> None:
    result = analyze([ArmCounts("B", 100, 12), ArmCounts("A", 100, 10)], "A")
    assert result.control == "A"
    assert [a.name for a in result.arms] == ["A", "B"]
    assert result.arms[0].p_value is None and result.arms[0].lift_abs is None
    assert result.arms[1].lift_abs == pytest.approx(0.02)
    assert result.arms[1].lift_rel == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("arms", "control", "message"),
    [
        ([ArmCounts("A", 10, 1), ArmCounts("B", 10, 1)], "Z", "control arm 'Z' is not among the arms; arms: A, B"),
        ([ArmCounts("A", 10, 11), ArmCounts("B", 10, 1)], "A", "cannot exceed"),
        ([ArmCounts("A", -1, 0), ArmCounts("B", 10, 1)], "A", "negative"),
        ([ArmCounts("A", 10, 1), ArmCounts("A", 10, 1)], "A", "duplicate arm name 'A'"),
        ([ArmCounts("A", 10, 1)], "A", "at least 2 arms"),
    ],
)
def test_analyze_refuses_bad_input(arms: list[ArmCounts], control: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        analyze(arms, control)


def test_analyze_refuses_bad_plan_and_alpha() -> None:
    arms = [ArmCounts("A", 10, 1), ArmCounts("B", 10, 1)]
    with pytest.raises(ValueError, match="planned"):
        analyze(arms, "A", planned_per_arm=0)
    with pytest.raises(ValueError, match="alpha"):
        analyze(arms, "A", alpha=1.5)


# --- CSV ----------------------------------------------------------------------------------------------


def test_analyze_csv_accepts_bom_case_spaces_and_extra_columns() -> None:
    data = "\ufeff Arm , SENDS ,Successes,note\nA,2000,200,control\n\nB, 2000 ,262,new opener\n".encode()
    result = analyze_csv(data, "A", planned_per_arm=1800)
    assert [a.name for a in result.arms] == ["A", "B"]
    assert result.arms[1].successes == 262
    assert result.verdict.code == "winner:B"


def test_analyze_csv_reports_every_bad_row_with_line_numbers() -> None:
    data = (
        b"arm,sends,successes\n"
        b"A,100,10\n"
        b"B,ten,3\n"
        b"C,-5,1\n"
        b"D,10,11\n"
        b"A,100,10\n"
        b",5,1\n"
        b"E,5\n"
    )
    with pytest.raises(ValueError) as info:
        analyze_csv(data, "A")
    message = str(info.value)
    assert "line 3: sends must be a whole number (got 'ten')" in message
    assert "line 4: sends cannot be negative" in message
    assert "line 5: successes (11) cannot exceed sends (10)" in message
    assert "line 6: arm 'A' already appears on line 2" in message
    assert "line 7: arm name is empty" in message
    assert "line 8: expected 3 values, found 2" in message
    assert message.startswith("The CSV has 6 problems:")


def test_analyze_csv_missing_control_lists_arms() -> None:
    with pytest.raises(ValueError, match="control arm 'A' is not in the file; arms: B, C"):
        analyze_csv(b"arm,sends,successes\nB,10,1\nC,10,2\n", "A")


def test_analyze_csv_single_arm_is_refused() -> None:
    with pytest.raises(ValueError, match="only one arm"):
        analyze_csv(b"arm,sends,successes\nA,10,1\n", "A")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"  \n\n", "empty"),
        (b"arm,sends\nA,10\n", r"line 1: missing column\(s\) successes"),
        (b"\n\narm,sends,sends,successes\n", "line 3: repeated column"),
        (b"arm,sends,successes\n", "no data rows under the header on line 1"),
        (b"arm,sends,successes\nA,10,1\n\xff\xfe,1,1\n", "not UTF-8"),
    ],
)
def test_analyze_csv_refuses_unusable_files(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        analyze_csv(data, "A")


# --- properties ---------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=1, max_value=100_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_interval_contains_the_rate(pair: tuple[int, int]) -> None:
    s, n = pair
    low, high = wilson_interval(s, n)
    assert 0.0 <= low <= s / n <= high <= 1.0


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=10))
def test_holm_is_monotone_and_never_below_raw(raw: list[float]) -> None:
    adjusted = holm(raw)
    assert all(q is not None and p <= q <= 1.0 for p, q in zip(raw, adjusted, strict=True))
    order = sorted(range(len(raw)), key=lambda i: raw[i])
    ranked = [adjusted[i] for i in order]
    assert all(a <= b for a, b in itertools.pairwise(ranked))  # type: ignore[operator]


def test_the_verdict_is_a_typed_value_with_its_code_and_favoured_arm() -> None:
    from core.experiments.stats import Verdict, VerdictKind

    won = analyze([ArmCounts("A", 1000, 100), ArmCounts("B", 1000, 150)], "A", planned_per_arm=900).verdict
    assert (won.kind, won.winner, won.code, won.withheld) == (VerdictKind.WINNER, "B", "winner:B", False)
    assert won.favoured_arm("A") == "B"
    assert Verdict(VerdictKind.CONTROL_BEST, "").favoured_arm("A") == "A"
    assert Verdict(VerdictKind.NO_DIFFERENCE, "").favoured_arm("A") is None
    for kind in (VerdictKind.NO_DATA, VerdictKind.COLLECTING, VerdictKind.SRM):
        assert Verdict(kind, "").withheld and Verdict(kind, "").favoured_arm("A") is None
    assert Verdict(VerdictKind.SRM, "").code == "srm"
