"""The `experiment` commands of `python -m core`: plan, create, list, stats, outcomes, promote, variants.

Thin over the `core.experiments` package; `register` is called by
`core.__main__.build_parser` with its `add(name, func, help, parent)` helper, so every command gets the
same `--json` flag and one-line errors (CLIError or ValueError, printed by `main`, exit code 2).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from core.cli import base as cli
from core.cli.base import AddCommand, CLIError, emit


def _one_line(text: str) -> str:
    return " ".join(text.replace("\n- ", "; ").split())


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise CLIError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise CLIError(f"{path} is a folder, not a CSV file") from None


def cmd_plan(args: argparse.Namespace) -> None:
    from core.experiments.planning import plan

    result = plan(args.baseline, args.mde, args.power, args.alpha, arms=args.arms, sends_per_week=args.weekly_sends)
    emit(result.as_json(), args.json)


def cmd_create(args: argparse.Namespace) -> None:
    from core.experiments.catalog import create_experiment
    from core.experiments.planning import plan

    a = cli.app()
    exp = create_experiment(a, args.name, args.step, args.control, args.variant, metric=args.metric,
                            mde_abs=args.mde, power=args.power, alpha=args.alpha, baseline_rate=args.baseline,
                            segment=args.segment)
    arms = 1 + len(args.variant)
    planned = plan(args.baseline, args.mde, args.power, args.alpha, arms=arms, sends_per_week=args.weekly_sends)
    emit({"created": {"id": exp.id, "name": exp.name, "step": exp.step, "segment": exp.segment,
                      "metric": exp.metric, "arms": [args.control, *args.variant],
                      "planned_per_arm": exp.planned_per_arm, "plan": planned.as_json()}}, args.json)


def cmd_list(args: argparse.Namespace) -> None:
    from core.experiments.catalog import list_experiments

    emit({"experiments": [e.as_json() for e in list_experiments(cli.app())]}, args.json)


def cmd_stats(args: argparse.Namespace) -> None:
    from core.experiments.results import experiment_stats

    emit(experiment_stats(cli.app(), args.id).as_json(), args.json)


def cmd_import_outcomes(args: argparse.Namespace) -> None:
    from core.experiments.outcomes import OutcomeImportError, import_outcomes

    data = _read(args.file)
    try:
        report = import_outcomes(cli.app(), args.id, data)
    except OutcomeImportError as exc:
        raise CLIError(_one_line(str(exc))) from None
    emit(report.as_json(), args.json)


def analysis_json(analysis: Any) -> dict[str, Any]:
    """`stats.Analysis` as plain JSON values (the interval of the difference as a two-item list)."""
    data = asdict(analysis)
    data["verdict"], data["verdict_text"] = analysis.verdict.code, analysis.verdict.text
    for arm in data["arms"]:
        if arm["lift_abs_ci"] is not None:
            arm["lift_abs_ci"] = list(arm["lift_abs_ci"])
    return data


def cmd_analyze(args: argparse.Namespace) -> None:
    from core.experiments.stats import analyze_csv

    data = _read(args.file)
    try:
        analysis = analyze_csv(data, args.control, planned_per_arm=args.planned_per_arm)
    except ValueError as exc:
        raise CLIError(_one_line(str(exc))) from None
    emit(analysis_json(analysis), args.json)


def cmd_promote(args: argparse.Namespace) -> None:
    from core.experiments.decisions import promote

    emit({"decision": promote(cli.app(), args.id, args.arm, args.by, force=args.force).as_json()}, args.json)


def cmd_stop(args: argparse.Namespace) -> None:
    from core.experiments.decisions import stop_experiment

    emit({"decision": stop_experiment(cli.app(), args.id, args.by, args.reason).as_json()}, args.json)


def cmd_variants(args: argparse.Namespace) -> None:
    from core.experiments.variants import generate_variants

    performance: dict[str, Any] | None = None
    if args.performance:
        try:
            performance = json.loads(args.performance)
        except ValueError as exc:
            raise CLIError(f"--performance must be a JSON object: {exc}") from None
        if not isinstance(performance, dict):
            raise CLIError("--performance must be a JSON object, e.g. '{\"reply_rate\": 0.08}'")
    report = asyncio.run(generate_variants(cli.app(), args.template, args.count, performance))
    emit(report.as_json(), args.json)


def cmd_estimate(args: argparse.Namespace) -> None:
    from core.experiments.variants import estimate_bulk

    emit(estimate_bulk(cli.app(), args.industry or None, args.count).as_json(), args.json)


def _planning_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--baseline", type=float, default=0.10, help="current rate of the metric (default 0.10)")
    p.add_argument("--mde", type=float, default=0.03,
                   help="smallest absolute change worth detecting (default 0.03: 10%% -> 13%%)")
    p.add_argument("--power", type=float, default=0.8)
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--weekly-sends", type=int, default=None, help="sends per week over all arms, for the weeks")


def register(sub: argparse._SubParsersAction, add: AddCommand) -> None:  # type: ignore[type-arg]
    """Add `experiment ...` to the CLI (called from core.__main__.build_parser)."""
    from core.experiments.catalog import METRICS

    group = sub.add_parser("experiment", help="A/B experiments on templates",
                           description="A/B experiments on templates").add_subparsers(
        dest="experiment_cmd", required=True, metavar="ACTION")

    p = add("plan", cmd_plan, "sends per arm and weeks needed, before starting", group)
    _planning_args(p)
    p.add_argument("--arms", type=int, default=2, help="arms including the control (default 2)")

    p = add("create", cmd_create, "start an experiment: control template vs variant templates", group)
    p.add_argument("--name", required=True)
    p.add_argument("--step", required=True)
    p.add_argument("--control", required=True, help="the template prospects get today")
    p.add_argument("--variant", action="append", required=True, help="a variant template (repeat for A/B/n)")
    p.add_argument("--metric", choices=list(METRICS), default="positive_rate")
    p.add_argument("--segment", default=None, help="industry (default: the control template's)")
    _planning_args(p)

    add("list", cmd_list, "every experiment with its status and sends", group)

    p = add("stats", cmd_stats, "results: rates with Wilson intervals, Holm p-values, SRM, verdict", group)
    p.add_argument("id", type=int)

    p = add("import-outcomes", cmd_import_outcomes,
            "store outcomes from a CSV (identity or linkedin_url or email, sent_at, accepted, replied, positive)",
            group)
    p.add_argument("id", type=int)
    p.add_argument("file")

    p = add("analyze", cmd_analyze, "analyze an arm,sends,successes CSV without storing anything", group)
    p.add_argument("file")
    p.add_argument("--control", required=True, help="the control arm's name in the file")
    p.add_argument("--planned-per-arm", type=int, default=None, help="withhold the verdict below this sample")

    p = add("promote", cmd_promote, "make an arm's template the default and stop the experiment", group)
    p.add_argument("id", type=int)
    p.add_argument("arm")
    p.add_argument("--by", required=True, help="who decides (recorded)")
    p.add_argument("--force", action="store_true", help="promote although the verdict is withheld or disagrees")

    p = add("stop", cmd_stop, "stop without promoting", group)
    p.add_argument("id", type=int)
    p.add_argument("--by", required=True)
    p.add_argument("--reason", default="")

    p = add("variants", cmd_variants, "ask the model for variants of a template; keep those that pass", group)
    p.add_argument("template")
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--performance", help="JSON object of performance data sent with the prompt")

    p = add("estimate", cmd_estimate, "cost of generating variants for every template of an industry", group)
    p.add_argument("--industry", default="", help="industry (empty: untargeted templates)")
    p.add_argument("--count", type=int, default=3)
