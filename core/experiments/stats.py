"""A/B statistics for reply rates of template variants, honest enough to act on.

Replies are binomial outcomes, so every figure here is computed from counts (sends, replies) by pure
functions with no database. The maintained libraries do the math wherever they can (statsmodels for
z-tests, Wilson and Newcombe intervals, power; scipy for chi-square, Beta distributions and
integration); this module adds the parts an operator needs around them: validation with messages a person
can act on, no division by zero on empty arms, a sample-ratio-mismatch check, and a verdict that is
withheld until the planned sample is reached.

Choices, so a reader can check them:
- p-values: two-sided two-proportion z-test with the pooled variance (statsmodels `proportions_ztest`).
- rate intervals: Wilson score (`proportion_confint(method="wilson")`).
- interval of the difference: Newcombe's hybrid score interval built from the two Wilson intervals
  (`confint_proportions_2indep(method="newcomb")`); unlike Wald it behaves at 0 or all replies.
- A/B/n: Holm across the non-control arms (the numbers of `multipletests(method="holm")`, computed
  with numpy; see `holm` for why).
- chance to beat control and expected loss: exact one-dimensional numerical integration over
  Beta(1 + replies, 1 + non-replies) posteriors, so results are deterministic without a seed.
- sample size: statsmodels `NormalIndPower` on Cohen's h (`proportion_effectsize`), with the Bonferroni
  alpha / n_treatments (Holm's first step) for A/B/n. 10% -> 13% at 80% power, alpha 0.05 two-sided gives
  1,769 per arm; the classic pooled/unpooled normal formula gives 1,774 ("roughly 1,800" in the notes).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np
from scipy import integrate
from scipy import stats as sps
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportion_effectsize,
    proportions_ztest,
)

from core.wording import plural

SRM_THRESHOLD = 0.001
MAX_CSV_BYTES = 1_000_000
MAX_CSV_ARMS = 100
REQUIRED_COLUMNS = ("arm", "sends", "successes")



class VerdictKind(StrEnum):
    NO_DATA = "no_data"  # no sends recorded
    COLLECTING = "collecting"  # an arm is below its planned sample, or has no sends
    SRM = "srm"  # the sends split does not match the planned allocation
    WINNER = "winner"  # a variant beats the control
    NO_DIFFERENCE = "no_difference"
    CONTROL_BEST = "control_best"  # some variant is significantly worse, none better


_WITHHELD = frozenset({VerdictKind.NO_DATA, VerdictKind.COLLECTING, VerdictKind.SRM})


@dataclass(frozen=True)
class Verdict:
    """What the numbers say, in one typed value: its kind, the winning arm (for a winner) and the sentence."""

    kind: VerdictKind
    text: str
    winner: str | None = None

    @property
    def withheld(self) -> bool:
        """True while the evidence may not be acted on (no data, still collecting, or a broken assignment)."""
        return self.kind in _WITHHELD

    @property
    def code(self) -> str:
        """The stable code of the verdict for JSON and stored decisions: "winner:<arm>", or the kind."""
        return f"winner:{self.winner}" if self.kind == VerdictKind.WINNER else str(self.kind)

    def favoured_arm(self, control: str) -> str | None:
        """The arm the evidence supports: the winner, the control when it is best, else None."""
        if self.kind == VerdictKind.WINNER:
            return self.winner
        if self.kind == VerdictKind.CONTROL_BEST:
            return control
        return None

    def with_text(self, text: str) -> Verdict:
        return replace(self, text=text)


@dataclass(frozen=True)
class ArmCounts:
    name: str
    sends: int
    successes: int


@dataclass(frozen=True)
class ArmStats:
    name: str
    sends: int
    successes: int
    rate: float | None  # None when sends == 0
    ci_low: float | None  # Wilson, 1 - alpha (95% by default)
    ci_high: float | None
    lift_abs: float | None  # rate - control rate; None for the control or when undefined
    lift_abs_ci: tuple[float, float] | None  # Newcombe hybrid score interval of the difference
    lift_rel: float | None  # (rate - control) / control; None when the control rate is 0
    p_value: float | None  # pooled two-proportion z-test vs control, two-sided
    p_holm: float | None  # Holm-corrected across the non-control arms
    chance_to_beat_control: float | None  # P(p_arm > p_control) under Beta(1+s, 1+f) posteriors
    expected_loss: float | None  # E[max(p_control - p_arm, 0)]: the loss of choosing this arm


@dataclass(frozen=True)
class Analysis:
    arms: list[ArmStats]  # control first, then the other arms in input order
    control: str
    srm_p: float | None
    srm_flag: bool
    planned_per_arm: int | None
    verdict: Verdict


def _check_counts(successes: int, n: int, label: str = "") -> None:
    where = f"{label}: " if label else ""
    if n < 0 or successes < 0:
        raise ValueError(f"{where}counts cannot be negative (sends={n}, successes={successes})")
    if successes > n:
        raise ValueError(f"{where}successes ({successes}) cannot exceed sends ({n})")


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1 (exclusive), got {alpha}")


def wilson_interval(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for a binomial rate; raises ValueError when n == 0 (no rate to bound)."""
    _check_counts(successes, n)
    _check_alpha(alpha)
    if n == 0:
        raise ValueError("a Wilson interval needs at least one send (n == 0)")
    low, high = proportion_confint(successes, n, alpha=alpha, method="wilson")
    # The exact Wilson limits at 0 or all successes are 0 and 1; statsmodels can leave float noise there.
    low = 0.0 if successes == 0 else max(0.0, float(low))
    high = 1.0 if successes == n else min(1.0, float(high))
    return low, high


def two_proportion_pvalue(s1: int, n1: int, s2: int, n2: int) -> float | None:
    """Two-sided pooled z-test p-value; None when undefined (an empty arm, or pooled rate 0 or 1)."""
    _check_counts(s1, n1)
    _check_counts(s2, n2)
    if n1 == 0 or n2 == 0 or s1 + s2 in (0, n1 + n2):
        return None
    _, p = proportions_ztest(np.array([s1, s2]), np.array([n1, n2]), alternative="two-sided")
    return float(p)


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm step-down adjusted p-values; None entries stay None and are left out of the family.

    Same numbers as statsmodels `multipletests(method="holm")` (the tests check it), computed here because
    that function runs a full `gc.collect()` on every call, which costs 40-150 ms in a busy process.
    """
    present = [(i, p) for i, p in enumerate(pvalues) if p is not None]
    for i, p in present:
        if not 0.0 <= p <= 1.0:  # also rejects NaN
            raise ValueError(f"p-value at position {i} must be between 0 and 1, got {p}")
    out: list[float | None] = [None] * len(pvalues)
    if not present:
        return out
    raw = np.array([p for _, p in present], dtype=float)
    order = np.argsort(raw, kind="stable")
    # The k-th smallest of m p-values is multiplied by (m - k + 1), then made monotone and capped at 1.
    stepped = np.minimum(np.maximum.accumulate(raw[order] * np.arange(len(raw), 0, -1)), 1.0)
    adjusted = np.empty_like(stepped)
    adjusted[order] = stepped
    for (i, _), q in zip(present, adjusted, strict=True):
        out[i] = float(q)
    return out


def beta_chance_to_beat(s_a: int, n_a: int, s_c: int, n_c: int) -> tuple[float, float]:
    """(P(p_a > p_c), E[max(p_c - p_a, 0)]) under independent Beta(1 + s, 1 + n - s) posteriors.

    Exact up to quadrature error (about 1e-9): both are one-dimensional integrals over the control's
    posterior, using E[(x - p_a)+] = x F_a(x) - mean_a F_a+(x), where F_a+ is the CDF of Beta(a + 1, b).
    """
    _check_counts(s_a, n_a, "arm")
    _check_counts(s_c, n_c, "control")
    arm = sps.beta(1 + s_a, 1 + n_a - s_a)
    arm_shifted = sps.beta(2 + s_a, 1 + n_a - s_a)
    ctl = sps.beta(1 + s_c, 1 + n_c - s_c)
    mean_a = float(arm.mean())

    # The control's density is negligible outside these quantiles; a finite range keeps quad on the peak.
    low, high = float(ctl.ppf(1e-13)), float(ctl.isf(1e-13))
    # Break points where the arm's CDF turns, so a narrow arm posterior is not stepped over.
    points = sorted({float(q) for q in arm.ppf([1e-6, 0.5, 1 - 1e-6]) if low < q < high})

    def prob_integrand(x: float) -> float:
        return float(ctl.pdf(x) * arm.sf(x))

    def loss_integrand(x: float) -> float:
        return float(ctl.pdf(x) * max(x * arm.cdf(x) - mean_a * arm_shifted.cdf(x), 0.0))

    kwargs = {"points": points or None, "limit": 200, "epsabs": 1e-11, "epsrel": 1e-9}
    prob, _ = integrate.quad(prob_integrand, low, high, **kwargs)
    loss, _ = integrate.quad(loss_integrand, low, high, **kwargs)
    return min(max(prob, 0.0), 1.0), max(loss, 0.0)


def sample_ratio_pvalue(sends: Sequence[int], weights: Sequence[float] | None = None) -> float | None:
    """Chi-square goodness-of-fit p of sends against the planned allocation (equal when weights is None).

    None when it cannot be computed: fewer than two arms or no sends at all.
    """
    counts = [int(x) for x in sends]
    if any(x < 0 for x in counts):
        raise ValueError(f"send counts cannot be negative: {counts}")
    if weights is not None:
        if len(weights) != len(counts):
            raise ValueError(f"got {len(weights)} allocation weights for {len(counts)} arms")
        if any(not (w > 0 and math.isfinite(w)) for w in weights):
            raise ValueError(f"allocation weights must be positive numbers: {list(weights)}")
    total = sum(counts)
    if len(counts) < 2 or total == 0:
        return None
    shares = np.ones(len(counts)) if weights is None else np.asarray(weights, dtype=float)
    expected = total * shares / shares.sum()
    return float(sps.chisquare(counts, f_exp=expected).pvalue)


def sample_size_per_arm(
    baseline: float,
    mde_abs: float,
    power: float = 0.8,
    alpha: float = 0.05,
    n_treatments: int = 1,
    two_sided: bool = True,
) -> int:
    """Sends per arm to detect baseline -> baseline + mde_abs (Cohen's h, statsmodels NormalIndPower).

    With several treatments compared to one control under Holm, plan with alpha / n_treatments, the
    Bonferroni level of Holm's first step, which is conservative for every later step.
    """
    if not 0 < baseline < 1:
        raise ValueError(f"baseline rate must be between 0 and 1 (exclusive), got {baseline}")
    target = baseline + mde_abs
    if mde_abs == 0 or not 0 < target < 1:
        raise ValueError(
            f"minimum detectable effect must be non-zero and keep the rate inside (0, 1): "
            f"{baseline} + {mde_abs} = {target}"
        )
    if not 0 < power < 1:
        raise ValueError(f"power must be between 0 and 1 (exclusive), got {power}")
    _check_alpha(alpha)
    if n_treatments < 1:
        raise ValueError(f"n_treatments must be at least 1, got {n_treatments}")
    effect = abs(float(proportion_effectsize(target, baseline)))
    n = NormalIndPower().solve_power(
        effect_size=effect,
        alpha=alpha / n_treatments,
        power=power,
        ratio=1.0,
        alternative="two-sided" if two_sided else "larger",
    )
    return math.ceil(float(np.asarray(n).item()))


def weeks_to_sample(per_arm: int, arms: int, sends_per_week: int) -> float:
    """Weeks needed to send per_arm messages to each of `arms` arms at sends_per_week in total."""
    if per_arm < 0:
        raise ValueError(f"sends per arm cannot be negative, got {per_arm}")
    if arms < 1:
        raise ValueError(f"need at least one arm, got {arms}")
    if sends_per_week <= 0:
        raise ValueError(f"sends per week must be positive, got {sends_per_week}")
    return per_arm * arms / sends_per_week


def _validate_arms(arms: Sequence[ArmCounts], control: str) -> None:
    if len(arms) < 2:
        raise ValueError(f"an experiment needs at least 2 arms, got {len(arms)}")
    seen: set[str] = set()
    for arm in arms:
        if arm.name in seen:
            raise ValueError(f"duplicate arm name {arm.name!r}")
        seen.add(arm.name)
        _check_counts(arm.successes, arm.sends, f"arm {arm.name!r}")
    if control not in seen:
        names = ", ".join(a.name for a in arms)
        raise ValueError(f"control arm {control!r} is not among the arms; arms: {names}")


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "p unknown"
    return "p < 0.0001" if p < 0.0001 else f"p = {p:.2g}"


def _arm_stats(arm: ArmCounts, ctl: ArmCounts | None, alpha: float) -> ArmStats:
    """Everything about one arm except the Holm value (which needs the whole family)."""
    rate = arm.successes / arm.sends if arm.sends else None
    ci = wilson_interval(arm.successes, arm.sends, alpha) if arm.sends else None
    lift_abs = lift_ci = lift_rel = p = chance = loss = None
    if ctl is not None and arm.sends and ctl.sends:
        ctl_rate = ctl.successes / ctl.sends
        assert rate is not None
        lift_abs = rate - ctl_rate
        lift_rel = lift_abs / ctl_rate if ctl_rate > 0 else None
        low, high = confint_proportions_2indep(
            arm.successes, arm.sends, ctl.successes, ctl.sends, method="newcomb", compare="diff", alpha=alpha
        )
        lift_ci = (float(low), float(high))
        p = two_proportion_pvalue(arm.successes, arm.sends, ctl.successes, ctl.sends)
        chance, loss = beta_chance_to_beat(arm.successes, arm.sends, ctl.successes, ctl.sends)
    return ArmStats(
        name=arm.name,
        sends=arm.sends,
        successes=arm.successes,
        rate=rate,
        ci_low=ci[0] if ci else None,
        ci_high=ci[1] if ci else None,
        lift_abs=lift_abs,
        lift_abs_ci=lift_ci,
        lift_rel=lift_rel,
        p_value=p,
        p_holm=None,
        chance_to_beat_control=chance,
        expected_loss=loss,
    )


def _verdict(
    stats: list[ArmStats], srm_p: float | None, srm_flag: bool, planned: int | None, alpha: float
) -> Verdict:
    ctl, others = stats[0], stats[1:]
    if sum(a.sends for a in stats) == 0:
        return Verdict(VerdictKind.NO_DATA, "No sends recorded yet.")
    # A broken assignment does not heal by waiting, so say so before the sample is complete.
    if srm_flag:
        return Verdict(VerdictKind.SRM, (
            f"Withheld: the sends split does not match the planned allocation (sample-ratio mismatch, "
            f"{_fmt_p(srm_p)}); check how prospects are assigned to variants before trusting any result."
        ))
    fewest = min(a.sends for a in stats)
    if planned is not None and fewest < planned:
        share = min(round(100 * fewest / planned), 99)
        return Verdict(VerdictKind.COLLECTING,
                       f"Withheld: {fewest:,} of {planned:,} planned sends per arm reached ({share}%).")
    empty = [a.name for a in stats if a.sends == 0]
    if empty:
        return Verdict(VerdictKind.COLLECTING, f"Withheld: no sends yet for {', '.join(repr(n) for n in empty)}.")

    level = f"{100 * alpha:g}%"
    better = [a for a in others if a.p_holm is not None and a.p_holm < alpha and (a.lift_abs or 0) > 0]
    worse = [a for a in others if a.p_holm is not None and a.p_holm < alpha and (a.lift_abs or 0) < 0]
    if better:
        best = max(better, key=lambda a: a.rate or 0.0)  # max keeps the first of equal rates
        assert best.rate is not None and ctl.rate is not None and best.lift_abs is not None
        return Verdict(VerdictKind.WINNER, (
            f"{best.name} beats control {ctl.name}: reply rate {_pct(best.rate)} vs {_pct(ctl.rate)} "
            f"({100 * best.lift_abs:+.1f} points, Holm-adjusted {_fmt_p(best.p_holm)})."
        ), winner=best.name)
    if worse:
        names = ", ".join(a.name for a in worse)
        return Verdict(VerdictKind.CONTROL_BEST, (
            f"Control {ctl.name} is best: {names} {'is' if len(worse) == 1 else 'are'} significantly worse "
            f"at the {level} level (Holm-adjusted) and no variant is better."
        ))
    return Verdict(VerdictKind.NO_DIFFERENCE, (
        f"No variant differs significantly from control {ctl.name} at the {level} level (Holm-adjusted); "
        f"keep the control or choose on other grounds."
    ))


def analyze(
    arms: Sequence[ArmCounts],
    control: str,
    planned_per_arm: int | None = None,
    weights: Sequence[float] | None = None,
    alpha: float = 0.05,
) -> Analysis:
    """Compare every arm with the control and decide, or say why the verdict is withheld.

    Verdict order: "no_data" (no sends) > "srm" (sample-ratio mismatch, p < 0.001) > "collecting"
    (an arm below planned_per_arm, or an arm with no sends) > "winner:<arm>" (Holm p < alpha and higher
    rate; the highest such rate wins) > "control_best" (some arm significantly worse, none better) >
    "no_difference". `weights` is the planned allocation in the order of `arms` (equal when None).
    """
    _check_alpha(alpha)
    _validate_arms(arms, control)
    if planned_per_arm is not None and planned_per_arm < 1:
        raise ValueError(f"planned sends per arm must be at least 1, got {planned_per_arm}")
    srm_p = sample_ratio_pvalue([a.sends for a in arms], weights)
    srm_flag = srm_p is not None and srm_p < SRM_THRESHOLD

    ctl_counts = next(a for a in arms if a.name == control)
    ordered = [ctl_counts, *(a for a in arms if a.name != control)]
    stats = [_arm_stats(ctl_counts, None, alpha)]
    stats += [_arm_stats(a, ctl_counts, alpha) for a in ordered[1:]]
    adjusted = holm([a.p_value for a in stats[1:]])
    stats = [stats[0]] + [replace(a, p_holm=q) for a, q in zip(stats[1:], adjusted, strict=True)]
    verdict = _verdict(stats, srm_p, srm_flag, planned_per_arm, alpha)
    return Analysis(
        arms=stats,
        control=control,
        srm_p=srm_p,
        srm_flag=srm_flag,
        planned_per_arm=planned_per_arm,
        verdict=verdict,
    )


_WHOLE = re.compile(r"[0-9]+")
_NEGATIVE = re.compile(r"-[0-9]+")


def _parse_count(raw: str, column: str, line: int, errors: list[str]) -> int | None:
    value = raw.strip()
    if _WHOLE.fullmatch(value):
        return int(value)
    if _NEGATIVE.fullmatch(value):
        errors.append(f"line {line}: {column} cannot be negative (got {value})")
    elif not value:
        errors.append(f"line {line}: {column} is empty")
    else:
        errors.append(f"line {line}: {column} must be a whole number (got {value[:40]!r})")
    return None


def _read_csv_rows(data: bytes) -> list[tuple[int, list[str]]]:
    """(line number, fields) of every non-blank row; raises ValueError for files that are not CSV text."""
    if len(data) > MAX_CSV_BYTES:
        raise ValueError(f"the file is {len(data):,} bytes; an experiment summary must be under 1 MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"the file is not UTF-8 text (bad byte at offset {exc.start})") from None
    if not text.strip():
        raise ValueError("the file is empty; expected a header line 'arm,sends,successes'")
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []
    try:
        for fields in reader:
            if any(f.strip() for f in fields):
                rows.append((reader.line_num, fields))
    except csv.Error as exc:
        raise ValueError(f"line {reader.line_num}: not valid CSV ({exc})") from None
    return rows


def analyze_csv(data: bytes, control: str, planned_per_arm: int | None = None) -> Analysis:
    """Analyze an uploaded `arm,sends,successes` CSV (UTF-8, optional BOM; extra columns are ignored).

    Every problem is reported at once, one per line of the ValueError message, each naming its line.
    """
    rows = _read_csv_rows(data)
    header_line, header = rows[0]
    names = [h.strip().lower() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    doubled = sorted({c for c in REQUIRED_COLUMNS if names.count(c) > 1})
    if missing or doubled:
        found = ", ".join(h.strip() for h in header) or "(nothing)"
        problem = f"missing column(s) {', '.join(missing)}" if missing else ""
        if doubled:
            problem += ("; " if problem else "") + f"repeated column(s) {', '.join(doubled)}"
        raise ValueError(
            f"line {header_line}: {problem}; the header must be arm,sends,successes (found: {found})"
        )
    col = {c: names.index(c) for c in REQUIRED_COLUMNS}

    errors: list[str] = []
    arms: list[ArmCounts] = []
    first_seen: dict[str, int] = {}
    for line, fields in rows[1:]:
        if len(fields) != len(header):
            errors.append(f"line {line}: expected {len(header)} values, found {len(fields)}")
            continue
        name = fields[col["arm"]].strip()
        sends = _parse_count(fields[col["sends"]], "sends", line, errors)
        successes = _parse_count(fields[col["successes"]], "successes", line, errors)
        if not name:
            errors.append(f"line {line}: arm name is empty")
        elif name in first_seen:
            errors.append(f"line {line}: arm {name!r} already appears on line {first_seen[name]}")
        else:
            first_seen[name] = line
        if sends is not None and successes is not None and successes > sends:
            errors.append(f"line {line}: successes ({successes:,}) cannot exceed sends ({sends:,})")
        if name and sends is not None and successes is not None:
            arms.append(ArmCounts(name, sends, successes))

    if not first_seen and not errors:
        errors.append(f"no data rows under the header on line {header_line}")
    if len(first_seen) > MAX_CSV_ARMS:
        errors.append(f"the file has {len(first_seen)} arms; at most {MAX_CSV_ARMS} are supported")
    if first_seen and control not in first_seen:
        errors.append(f"control arm {control!r} is not in the file; arms: {', '.join(first_seen)}")
    if len(first_seen) == 1 and control in first_seen:
        errors.append(f"only one arm ({control!r}) in the file; an experiment needs at least 2")
    if errors:
        raise ValueError(f"The CSV has {plural(len(errors), 'problem')}:\n" + "\n".join(f"- {e}" for e in errors))
    return analyze(arms, control, planned_per_arm=planned_per_arm)
