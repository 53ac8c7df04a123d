"""Template-only throughput with guards: 100,000 prospects rendered and checked (target: <= 5 s here).

Baseline, in the same process: the seed's `minimalPersonalization` fill (three `str.replace` calls, no
guards, no fallback handling). The ratio says what rendering with fallbacks and every guard costs on top.
"""

from __future__ import annotations

import time

from bench.common import print_table, temp_app
from core.messages.guards import GUARD_NAMES, check_message
from core.messages.library import markers, specs
from core.messages.personalize import banned_phrases
from core.messages.templates import render
from core.people.prospects import list_prospects, prospect_fields

N = 100_000


def main() -> dict[str, float]:
    app = temp_app()
    base = [prospect_fields(p) for p in list_prospects(app, limit=1000) if not p.flags]
    people = [{**base[i % len(base)], "first_name": f"{base[i % len(base)]['first_name']}{i % 97}"} for i in range(N)]
    template = next(t for t in specs(app) if t.name == "connection_request_plain").text
    marker_map = markers(app.settings.data_dir)
    banned = banned_phrases(app.settings.data_dir)

    t0 = time.perf_counter()
    passed = 0
    for fields in people:
        rendered = render(template, fields, marker_map)
        if rendered.needs_data:
            continue
        results = check_message(rendered.text, inputs=fields, max_chars=300, banned_phrases=banned)
        passed += all(r.passed for r in results)
    ours = time.perf_counter() - t0

    seed_template = template.replace("{{ first_name }}", "{{first_name}}").replace(
        "{{ company_name }}", "{{company_name}}")
    t0 = time.perf_counter()
    for fields in people:
        seed_template.replace("{{first_name}}", fields["first_name"]).replace(
            "{{company_name}}", fields["company_name"]).replace("{{industry}}", fields["industry"])
    seed = time.perf_counter() - t0

    print_table(f"Template-only messages with guards, {N:,} prospects (target: <= 5 s)",
                [(f"ours: render + {len(GUARD_NAMES)} guards", f"{ours:.2f} s", f"{N / ours:,.0f}/s",
                  f"{passed:,} passed"),
                 ("baseline: the original plan's str.replace, no guards", f"{seed:.2f} s", f"{N / seed:,.0f}/s", ""),
                 ("ratio ours / baseline", f"{ours / seed:.1f}x", "", "")],
                ("run", "wall time", "throughput", "note"))
    return {"seconds": ours, "ratio": ours / seed}


if __name__ == "__main__":
    main()
