"""Tokens per personalized message: our prompt against the seed's, on the same 200 demo prospects.

Both sides answer through the offline simulator, which counts tokens with Mistral's Tekken tokenizer.
Ours: only the fields the markers need, capped, in a data block, asking for the marker texts as JSON
(plus context summaries for long news, once per company, counted here too). The seed's: the whole prospect
as JSON and the whole message asked back. Only prospects whose template needs writing are compared
(the seed also skips the model otherwise). Review calls are excluded on both sides. Target: ours at most
60% of the seed's tokens.
"""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import text

from bench.common import print_table, temp_app
from core.messages import prompts
from core.messages.library import specs
from core.messages.personalize import Options, Pipeline
from core.messages.templates import render, select_template
from core.people.prospects import list_prospects, prospect_fields


async def main() -> dict[str, float]:
    app = temp_app()
    assert app.simulator is not None
    prospects = list_prospects(app, limit=200)
    library = specs(app)
    async with app.gateway() as gw:
        pipeline = Pipeline(gw, library, app.settings.data_dir)
        seed_in = seed_out = 0
        compared = 0
        for p in prospects:
            fields = prospect_fields(p)
            if p.flags:
                continue
            spec, _ = select_template("connection_request", p.industry, p.company_size, library)
            if not render(spec.text, fields, pipeline.markers).needs_writing:
                continue
            compared += 1
            await pipeline.run(fields, Options(template_name=spec.name, allow_review=False))
            seed_prospect = {"firstName": p.first_name, "lastName": p.last_name, "companyName": p.company_name,
                             "jobTitle": p.job_title, "industry": p.industry, "companySize": p.company_size,
                             "linkedinUrl": p.linkedin_url, "email": p.email, "recentNews": p.recent_news,
                             "notes": p.notes}
            body = {"model": "mistralai/mistral-7b-instruct", "max_tokens": 200, "temperature": 0.7,
                    "messages": prompts.seed_personalize_messages(spec.text, seed_prospect)}
            answer = json.loads(app.simulator.handle("POST", "/api/v1/chat/completions",
                                                     json.dumps(body).encode()).body)
            seed_in += answer["usage"]["prompt_tokens"]
            seed_out += answer["usage"]["completion_tokens"]
    with app.engine.connect() as conn:
        ours_in, ours_out = conn.execute(text("SELECT SUM(input_tokens), SUM(output_tokens) FROM usage_ledger")).one()
    ours_in, ours_out = int(ours_in or 0), int(ours_out or 0)
    rows = [
        ("input tokens / message", f"{seed_in / compared:.1f}", f"{ours_in / compared:.1f}",
         f"{ours_in / seed_in:.1%}"),
        ("output tokens / message", f"{seed_out / compared:.1f}", f"{ours_out / compared:.1f}",
         f"{ours_out / seed_out:.1%}"),
        ("total tokens / message", f"{(seed_in + seed_out) / compared:.1f}", f"{(ours_in + ours_out) / compared:.1f}",
         f"{(ours_in + ours_out) / (seed_in + seed_out):.1%}"),
    ]
    print_table(f"Tokens per model-written message, {compared} demo prospects (target: ours <= 60% of the original "
                "cost plan's)", rows, ("measure", "original plan's prompt", "our prompt", "ours / original"))
    return {"ratio": (ours_in + ours_out) / (seed_in + seed_out), "compared": compared}


if __name__ == "__main__":
    asyncio.run(main())
