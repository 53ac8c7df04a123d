"""Prospect import at scale: a 50 MB, 350,000-row CSV (target: <= 30 s and <= 500 MB peak memory here).

The file is generated in a temp folder (LinkedIn URLs with accents, quoted cells with commas, some rows with
only an e-mail, some duplicates and a few do-not-contact people), then imported through
`core.people.prospects.import_prospects`, the function `python -m core import` calls, on a fresh SQLite database.

Each run happens in its own child process, so each peak RSS (`resource.getrusage(...).ru_maxrss`) is that
run's alone. Baseline, in the same benchmark run: the standard `csv` module reading the same file into a list
of rows (parse only: no checks, no database). The ratios say what checking, matching and storing cost on top.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import print_table

ROWS = 350_000
TARGET_BYTES = 50_000_000
SUPPRESSED_EVERY = 10_000  # one person in this many opted out before the import
HEADER = ("first_name,last_name,company_name,job_title,industry,company_size,linkedin_url,email,recent_news,"
          "notes,sender_account\n")
FIRSTS = ("Ana", "José", "Chloé", "Mateo", "Zoë", "Liam", "Noa", "Søren", "Ivo", "Rosa", "Kenji", "Amara")
LASTS = ("García", "Müller", "Dubois", "Kowalski", "Ng", "Okafor", "Silva", "Andersen", "Rossi", "Kaplan")
INDUSTRIES = ("SaaS", "Fintech", "Healthcare", "Education", "Logistics", "Retail", "Manufacturing")
TITLES = ("Head of Growth", "VP Sales", "CTO", "Founder", "Marketing Manager", "Head of Partnerships")


def _row(i: int, news: str) -> str:
    first, last = FIRSTS[i % len(FIRSTS)], LASTS[(i // len(FIRSTS)) % len(LASTS)]
    slug = f"{first.lower()}-{last.lower()}-{i}"
    url = "" if i % 7 == 0 else (f"https://fr.linkedin.com/in/{slug}/?trk=x" if i % 5 == 0 else
                                 f"https://www.linkedin.com/in/{slug}")
    email = f"{first.lower()}.{i}@example{i % 50}.com" if i % 3 else ""
    if not url and not email:
        email = f"p{i}@example.org"
    if i % 1000 == 999:  # an in-file duplicate of the row before (same e-mail, another case)
        return _row(i - 1, news).replace("@example", "@EXAMPLE", 1) if (i - 1) % 3 else _row(i - 1, news)
    company = f'"{last} & Co, Ltd"' if i % 11 == 0 else f"{last} Labs {i % 997}"
    return (f"{first},{last},{company},{TITLES[i % len(TITLES)]},{INDUSTRIES[i % len(INDUSTRIES)]},"
            f"{10 + i % 5000},{url},{email},{news},,sender-{i % 4}\n")


def generate(path: Path, rows: int = ROWS, target_bytes: int = TARGET_BYTES) -> int:
    """Write the benchmark CSV; returns its size in bytes. The news column is sized to reach the target."""
    plain = sum(len(_row(i, "").encode()) for i in range(1000)) / 1000
    pad = max(0, int((target_bytes - len(HEADER)) / rows - plain))
    sentence = "The company announced a new funding round and is hiring across Europe and the Americas. " * 4
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        for i in range(rows):
            out.write(_row(i, sentence[: pad - (i % 5)]))
    return path.stat().st_size


def _child(mode: str, path: str) -> dict[str, float | int | str]:
    """One measured run in this (fresh) process."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0, c0 = time.perf_counter(), time.process_time()
    if mode == "csv":
        import csv

        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
        result: dict[str, float | int | str] = {"rows": len(rows) - 1}
    else:
        from bench.common import temp_app
        from core.people.prospects import import_prospects, suppress

        app = temp_app(load_demo=False)
        for i in range(0, ROWS, SUPPRESSED_EVERY):  # opted out before, known by e-mail (another case) only
            first = FIRSTS[(i + 1) % len(FIRSTS)]
            suppress(app, f"email:{first.upper()}.{i + 1}@EXAMPLE{(i + 1) % 50}.COM", "bench opt-out")
        t0, c0 = time.perf_counter(), time.process_time()
        report = import_prospects(app, Path(path).read_bytes())
        result = {"rows": report.rows, "accepted": report.accepted, "duplicates": report.duplicates,
                  "suppressed": report.suppressed, "rejected": len(report.rejected)}
    result["seconds"] = time.perf_counter() - t0
    result["cpu_seconds"] = time.process_time() - c0  # the wall time above includes waiting for a shared CPU
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    result["start_mb"] = before / 1024
    return result


def _measure(mode: str, path: Path) -> dict[str, float | int | str]:
    done = subprocess.run([sys.executable, "-m", "bench.import_csv", "--child", mode, str(path)],
                          check=True, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="sam-bench-import-") as folder:
        path = Path(folder) / "prospects.csv"
        size = generate(path)
        ours = _measure("import", path)
        base = _measure("csv", path)
    t_ratio = float(ours["seconds"]) / float(base["seconds"])
    m_ratio = float(ours["peak_mb"]) / float(base["peak_mb"])
    note = (f"{ours['accepted']:,} new, {ours['duplicates']:,} duplicates, {ours['suppressed']:,} do not contact, "
            f"{ours['rejected']:,} rejected")
    print_table(f"Prospect import, {size / 1e6:.1f} MB, {ROWS:,} rows (target: <= 30 s, <= 500 MB peak)",
                [("ours: import_prospects (the CLI's import)", f"{float(ours['seconds']):.1f} s",
                  f"{float(ours['cpu_seconds']):.1f} s", f"{float(ours['peak_mb']):.0f} MB", f"{int(ours['rows']):,}",
                  note),
                 ("baseline: csv.reader into a list", f"{float(base['seconds']):.1f} s",
                  f"{float(base['cpu_seconds']):.1f} s", f"{float(base['peak_mb']):.0f} MB",
                  f"{int(base['rows']):,}", "parse only"),
                 ("ratio ours / baseline", f"{t_ratio:.1f}x", "", f"{m_ratio:.1f}x", "", "")],
                ("run", "wall time", "CPU time", "peak RSS", "rows", "note"))
    return {"seconds": float(ours["seconds"]), "cpu_seconds": float(ours["cpu_seconds"]),
            "peak_mb": float(ours["peak_mb"]), "time_ratio": t_ratio, "memory_ratio": m_ratio,
            "rows": float(ours["rows"])}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, metavar=("MODE", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        os.environ.setdefault("SAM_INPROCESS_WORKER", "0")
        print(json.dumps(_child(*args.child)))
    else:
        main()
