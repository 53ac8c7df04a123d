"""`make bench`: run every benchmark and print one summary table after their own tables."""

from __future__ import annotations

import asyncio
import time

from bench import batch_throughput, import_csv, spend_summary, template_throughput, tokens_vs_seed
from bench.common import print_table


def main() -> None:
    rows = []
    started = time.perf_counter()
    tokens = asyncio.run(tokens_vs_seed.main())
    rows.append(("tokens per message vs the original plan's prompt", f"{tokens['ratio']:.1%} of the original's",
                 "<= 60%", "met" if tokens["ratio"] <= 0.60 else "missed"))
    templates = template_throughput.main()
    rows.append(("100,000 template-only messages with guards", f"{templates['seconds']:.2f} s", "<= 5 s",
                 "met" if templates["seconds"] <= 5 else "missed"))
    spend = spend_summary.main()
    rows.append(("spend summary on 1,000,000 ledger rows", f"{spend['summary_s']:.3f} s", "<= 0.5 s",
                 "met" if spend["summary_s"] <= 0.5 else "missed"))
    imported = import_csv.main()
    rows.append(("import of a 50 MB, 350,000-row CSV", f"{imported['seconds']:.1f} s, {imported['peak_mb']:.0f} MB",
                 "<= 30 s, <= 500 MB",
                 "met" if imported["seconds"] <= 30 and imported["peak_mb"] <= 500 else "missed"))
    batch = batch_throughput.main()
    for server in batch_throughput.SERVERS:
        pct = batch[f"{server}_of_bound"] * 100
        target = batch_throughput.TARGET_OF_BOUND * 100
        rows.append((f"6,000 model-written rows, {server} at 100 ms, concurrency 32", f"{pct:.0f}% of the bound",
                     f">= {target:.0f}%", "met" if pct >= target else "missed"))
        ratio = batch[f"{server}_ratio"]
        rows.append((f"  ... against a bare openai-SDK loop on {server}", f"{ratio:.2f}x", "<= 1.15x",
                     "met" if ratio <= batch_throughput.TARGET_RATIO else "missed"))
    small, large = batch["peak_small_kb"] / 1024, batch["peak_large_kb"] / 1024
    rows.append(("  ... peak memory, 6,000 vs 50,000 rows", f"{small:.0f} / {large:.0f} MB", "flat",
                 "met" if large <= small * 1.05 else "missed"))
    print_table(f"All benchmarks ({time.perf_counter() - started:.0f} s)", rows, ("benchmark", "figure", "target",
                                                                                  "result"))


if __name__ == "__main__":
    main()
