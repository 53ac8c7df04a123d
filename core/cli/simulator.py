"""`python -m core simulator`: serve the offline simulator (`core.sim.simulator`) on a loopback port, with
optional latency and injected faults, for trying the console or a benchmark without a provider."""

from __future__ import annotations

import argparse
import sys
import time

from core.cli.base import AddCommand, CLIError


def cmd_simulator(args: argparse.Namespace) -> None:
    from core.costs.prices import current_book
    from core.sim.simulator import Faults, Simulator

    rates: dict[int, float] = {}
    for spec in args.fault or []:
        try:
            status, rate = spec.split("=", 1)
            rates[int(status)] = float(rate)
        except ValueError:
            raise CLIError(f"--fault takes STATUS=RATE, e.g. 429=0.1; got {spec!r}") from None
    faults = Faults(latency_ms=args.latency_ms, jitter_ms=args.jitter_ms, error_rates=rates,
                    retry_after=args.retry_after, malformed_rate=args.malformed_rate, seed=args.seed)
    server = Simulator(current_book(), faults).serve(args.host, args.port)
    print(f"simulator listening on {server.url} (chat completions, GET /models, GET /key); Ctrl-C to stop",
          file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.close()


def register(sub: argparse._SubParsersAction, add: AddCommand) -> None:  # type: ignore[type-arg]
    sim = add("simulator", cmd_simulator, "serve the offline simulator on a loopback port")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8765)
    sim.add_argument("--latency-ms", type=float, default=0.0)
    sim.add_argument("--jitter-ms", type=float, default=0.0)
    sim.add_argument("--fault", action="append", metavar="STATUS=RATE", help="inject errors, e.g. 429=0.1")
    sim.add_argument("--retry-after", type=float, default=None, help="Retry-After seconds on injected 429/503")
    sim.add_argument("--malformed-rate", type=float, default=0.0)
    sim.add_argument("--seed", type=int, default=0)
