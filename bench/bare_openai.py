"""The baseline of `bench.batch_throughput`: a bare `openai` SDK loop, in a module that imports nothing else.

Why a module of its own: the benchmark times the whole process, start-up and imports included, for the
batch worker (`python -m core worker --once`) and for this loop alike; run as part of the benchmark module it
would also import SQLAlchemy and the engine, which a bare loop does not need.

`python -m bench.bare_openai URL REQUESTS_FILE CONCURRENCY` sends every chat-completion body of the JSON file
to URL with `AsyncOpenAI` under `asyncio.Semaphore(CONCURRENCY)`, one call per body, nothing stored, and
prints one JSON line: calls, prompt tokens summed from the answers' usage, and its in-process time.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI


async def bare_loop(url: str, bodies: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    """Every body sent once; raises when an answer has no usage or no content (not a like-for-like call)."""
    client = AsyncOpenAI(base_url=url, api_key="x")
    semaphore = asyncio.Semaphore(concurrency)

    async def one(body: dict[str, Any]) -> int:
        extra = {k: body[k] for k in ("models", "provider") if k in body}
        async with semaphore:
            answer = await client.chat.completions.create(
                model=body["model"], messages=body["messages"], max_tokens=body["max_tokens"],
                temperature=body["temperature"], response_format=body["response_format"], extra_body=extra)
        if answer.usage is None or not answer.choices[0].message.content:
            raise RuntimeError("the server answered without usage or content")
        return answer.usage.prompt_tokens

    t0 = time.perf_counter()
    tokens = await asyncio.gather(*(one(b) for b in bodies))
    seconds = time.perf_counter() - t0
    await client.close()
    return {"seconds": seconds, "calls": len(tokens), "prompt_tokens": sum(tokens)}


def main(argv: list[str]) -> None:
    url, requests_file, concurrency = argv
    bodies = json.loads(Path(requests_file).read_text())
    print(json.dumps(asyncio.run(bare_loop(url, bodies, int(concurrency)))))


if __name__ == "__main__":
    main(sys.argv[1:])
