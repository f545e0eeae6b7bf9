"""`slabot analyze` on 1,000,000 history rows: under 10 s, with memory that does not grow with the file.

A messy history CSV (mixed-case sources with stray spaces and hyphens, blank cells, amounts on won
rows, one bad row in ten thousand) is generated into a temporary file, then `slabot analyze FILE
--by source,offer --json` runs in its own process, as an operator runs it, twice: on the first
100,000 rows and on all 1,000,000. Each run's wall time, CPU time (user + system, which is what the
machine gave it: the wall time suffers when the machine is busy) and peak resident memory
(ru_maxrss of that child alone, from wait4) are reported. Flat memory: the 1M peak is within
16 MB of the 100k peak. Quick: 100,000 against 300,000 rows (same targets).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, Row

TARGET_S = 10.0
FLAT_MB = 16.0
SOURCES = ["Webinar", " webinar", "WEBINAR ", "Demo Request", "demo-request", "demo_request", "Ebook", "e-book",
           "List Purchase", "Google", "google", "Direct Traffic", "direct traffic ", "Organic Search", "Referral",
           "Partner", "Trade Show", "", " "]
OFFERS = ["Pricing Guide", "pricing-guide", "ROI Calculator", "Free Trial", "", "Case Study"]


def generate(path: Path, rows: int, seed: int = 11) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("external_id,source,offer,campaign,opportunity,won,amount\n")
        chunk: list[str] = []
        for number in range(rows):
            source, offer = rng.choice(SOURCES), rng.choice(OFFERS)
            roll = rng.random()
            opportunity, won = roll < 0.15, roll < 0.04
            amount = f"{rng.randint(5, 80) * 500}" if won else ""
            if number % 10_000 == 9_999:
                chunk.append(f"h-{number},{source},{offer},fy27,yes,yes,n/a\n")   # a bad amount
            else:
                chunk.append(f"h-{number},{source},{offer},fy27,{'yes' if opportunity else 'no'},"
                             f"{'Y' if won else ''},{amount}\n")
            if len(chunk) >= 10_000:
                handle.write("".join(chunk))
                chunk.clear()
        handle.write("".join(chunk))


def timed(path: Path) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MB) of one `slabot analyze` process."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "bot.cli", "analyze", str(path), "--by", "source,offer",
                                "--json"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        error = process.stderr.read().decode(errors="replace") if process.stderr else ""
        raise RuntimeError(f"slabot analyze failed: {error[-2000:]}")
    if process.stderr:
        process.stderr.close()
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def run(quick: bool = False) -> list[Row]:
    small, large = (100_000, 300_000) if quick else (100_000, 1_000_000)
    target = TARGET_S
    with tempfile.TemporaryDirectory(prefix="slabot-bench-analyze-") as directory:
        results = {}
        for rows in (small, large):
            path = Path(directory) / f"history-{rows}.csv"
            generate(path, rows)
            results[rows] = timed(path)
            path.unlink()
    wall, cpu, peak = results[large]
    small_peak = results[small][2]
    return [
        Row(f"analyze {large:,} history rows", f"{wall:.1f} s wall, {cpu:.1f} s CPU", f"< {target:g} s",
            wall < target),
        Row("analyze memory (peak RSS)", f"{small_peak:.0f} MB at {small:,} rows, {peak:.0f} MB at {large:,}",
            f"grows < {FLAT_MB:g} MB", peak - small_peak < FLAT_MB),
    ]


if __name__ == "__main__":
    from benchmarks.common import table

    print(table(run(quick="--quick" in sys.argv)))
