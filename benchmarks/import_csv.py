"""`slabot import` of 100,000 leads from a CSV on SQLite (quick: 20,000): wall time, CPU and peak
memory (VmHWM, from the child's rusage) of the import process; then the same file made unreadable
(a Latin-1 byte) at row 90,000 (quick: 18,000): the rows before it must be kept and the line named.

The file is generated from examples/leads.csv's rows (varied sources, sizes and activities), each
with its own external id and e-mail. The import runs as an operator runs it: `python -m bot.cli
import FILE` in its own process, with a fresh database.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import EXAMPLE_AGREEMENT, ROOT, Row

TARGET_SECONDS = 60.0
TARGET_MB = 200.0


def write_csv(path: Path, count: int, *, bad_row: int | None = None) -> None:
    """`count` leads; row `bad_row` (1-based, line bad_row + 1) carries a byte that is not UTF-8."""
    with open(ROOT / "examples" / "leads.csv", newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        templates = list(reader)
    ext, email = header.index("external_id"), header.index("email")
    company = header.index("company")
    with open(path, "wb") as out:
        out.write((",".join(header) + "\n").encode())
        for n in range(1, count + 1):
            cells = list(templates[n % len(templates)])
            cells[ext] = f"bench-{n}"
            cells[email] = f"lead{n}@co{n % 5000}.example"
            line = _csv_line(cells).encode()
            if n == bad_row:
                line = line.replace(cells[company].encode(), b"Caf\xe9", 1)
            out.write(line)


def _csv_line(cells: list[str]) -> str:
    return ",".join(f'"{c}"' if ("," in c or '"' in c) else c for c in cells) + "\n"


def run_import(path: Path, db: Path) -> tuple[float, float, float, subprocess.CompletedProcess[str]]:
    """(wall s, CPU s, peak RSS MB, the finished process) of `slabot import path` on a fresh database."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "SLABOT_AGREEMENT": str(EXAMPLE_AGREEMENT)}
    for key in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "TEAMS_APP_ID"):
        env.pop(key, None)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "bot.cli", "import", str(path)], env=env, cwd=ROOT,
                                   stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)     # the child's own CPU and peak RSS
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        done = subprocess.CompletedProcess(process.args, process.returncode, out.read(), err.read())
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, done


def run(quick: bool = False) -> list[Row]:
    count = 20_000 if quick else 100_000
    bad = 18_000 if quick else 90_000
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        good = Path(tmp) / "leads.csv"
        write_csv(good, count)
        wall, cpu, peak, done = run_import(good, Path(tmp) / "good.db")
        summary = done.stdout.strip().splitlines()[0] if done.stdout.strip() else done.stderr.strip()[-300:]
        accepted = f"accepted {count} (" in done.stdout
        size = good.stat().st_size / 1e6
        rows.append(Row(f"slabot import of {count:,} leads ({size:.0f} MB CSV), SQLite",
                        f"{wall:.1f} s wall, {cpu:.1f} s CPU, {count / wall:.0f} leads/s; {summary}",
                        f"< {TARGET_SECONDS:.0f} s, all accepted", wall < TARGET_SECONDS and accepted
                        and done.returncode == 0))
        rows.append(Row(f"slabot import of {count:,} leads: peak memory", f"{peak:.0f} MB (VmHWM)",
                        f"< {TARGET_MB:.0f} MB", peak < TARGET_MB))
        broken = Path(tmp) / "broken.csv"
        write_csv(broken, count, bad_row=bad)
        wall, cpu, peak, done = run_import(broken, Path(tmp) / "broken.db")
        kept = re.search(r"accepted (\d+) ", done.stdout)
        error = (done.stderr.strip().splitlines() or [""])[-1]
        ok = (done.returncode == 2 and kept is not None and int(kept.group(1)) == bad - 1
              and f"line {bad + 1}:" in error)
        rows.append(Row(f"slabot import, not UTF-8 at row {bad:,}",
                        f"{kept.group(1) if kept else 'no summary'} kept, {wall:.1f} s; "
                        f"{error.replace(str(broken), 'FILE')[:160]}",
                        f"{bad - 1:,} kept, line {bad + 1:,} named", ok))
    return rows
