"""`slabot analyze` and `slabot plan` as an operator runs them, on the public X Education export."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_AGREEMENT, ROOT

X_EDUCATION = ROOT / "tests" / "fixtures" / "datasets" / "x_education_leads.csv"
X_MAP = ["--map", "source=Lead Source", "--map", "opportunity=Converted"]
CONTRACT_KEYS = {"rows", "bad_rows", "leads", "opportunities", "opportunity_rate", "won", "bookings", "segments",
                 "thresholds", "suggested_threshold", "segments_yaml"}
SEGMENT_KEYS = {"key", "leads", "opportunities", "opportunity_rate", "interval", "won", "bookings",
                "value_per_lead", "verdict"}


def slabot(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DATABASE_URL": f"sqlite:///{cwd / 'cli.db'}",
                   "SLABOT_AGREEMENT": str(EXAMPLE_AGREEMENT)}
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True,
                          env=environment, timeout=120, cwd=cwd)


def independent_counts() -> tuple[Counter[str], Counter[str]]:
    """Leads and conversions per lower-cased, space-joined source, read without slabot's code."""
    leads: Counter[str] = Counter()
    converted: Counter[str] = Counter()
    with open(X_EDUCATION, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            source = "_".join(row["Lead Source"].lower().split())
            leads[source] += 1
            converted[source] += row["Converted"] == "1"
    return leads, converted


def wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    z = 1.96
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_x_education_end_to_end_json(tmp_path: Path) -> None:
    result = slabot(tmp_path, "analyze", str(X_EDUCATION), *X_MAP, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= CONTRACT_KEYS
    assert all(set(s) >= SEGMENT_KEYS for s in data["segments"])
    leads, converted = independent_counts()
    assert data["rows"] == data["leads"] == sum(leads.values()) == 9240
    assert data["bad_rows"] == []
    assert data["opportunities"] == sum(converted.values())
    assert data["won"] == 0 and data["bookings"] == 0
    by_source = {s["key"]["source"]: s for s in data["segments"]}
    # "Google" and "google" are one segment; a blank source is its own, null in JSON
    assert by_source["google"]["leads"] == leads["google"] == 2873
    assert by_source[None]["leads"] == leads[""]
    reference = by_source["reference"]
    assert (reference["leads"], reference["opportunities"]) == (leads["reference"], converted["reference"])
    assert reference["opportunity_rate"] == pytest.approx(converted["reference"] / leads["reference"])
    assert reference["interval"] == pytest.approx(list(wilson_by_hand(converted["reference"], leads["reference"])))
    assert by_source["direct_traffic"]["leads"] == leads["direct_traffic"]
    for source, segment in by_source.items():
        expected = "too_few" if leads[source or ""] < 30 else "workable"   # every big X segment beats 2%
        assert segment["verdict"] == expected, source
    assert "  - {when: {source: google}}" in data["segments_yaml"]
    assert "bing" not in data["segments_yaml"]          # 6 leads: too few to judge


def test_readable_report_out_file_and_the_block_passes_check(tmp_path: Path) -> None:
    out = tmp_path / "segments.yaml"
    result = slabot(tmp_path, "analyze", str(X_EDUCATION), *X_MAP, "--baseline-rate", "0.2",
                    "--out", str(out))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("google ") and line.rstrip().endswith("workable") for line in lines)
    # a one-line verdict per segment, in words
    assert any(line.strip().startswith("google: workable: 39.9% became opportunities") for line in lines)
    assert "olark_chat: not workable: at most 27.6% become opportunities, below 40.0%" in result.stdout
    assert any(line.strip().startswith("bing: too few leads (6 of the 30") for line in lines)
    block = out.read_text()
    assert block.startswith("segments:\n") and result.stdout.rstrip().endswith(block.rstrip())
    # With twice 0.2 = 40% to beat, google (39.9%, upper bound 41.7%) is workable, Olark Chat
    # (25.5%, upper 27.6%) is not.
    assert "{when: {source: olark_chat}, workable: false}" in block
    assert "{when: {source: google}}" in block
    agreement = tmp_path / "agreement.yaml"
    text = EXAMPLE_AGREEMENT.read_text(encoding="utf-8")
    start, end = text.index("  segments:"), text.index("  default_value:")
    agreement.write_text(text[:start] + "".join(f"  {line}\n" for line in block.splitlines()) + text[end:])
    check = slabot(tmp_path, "check", str(agreement))
    assert check.returncode == 0, check.stderr


def test_bad_rows_are_reported_by_line_and_not_fatal(tmp_path: Path) -> None:
    history = tmp_path / "history.csv"
    history.write_text("source,opportunity,won,amount\nWebinar,1,1,900\nwebinar,0,0,abc\nebook,1\n")
    result = slabot(tmp_path, "analyze", str(history), "--min-leads", "1")
    assert result.returncode == 0, result.stderr
    assert "line 3: amount 'abc' is not a number" in result.stdout
    assert "line 4: 2 cells, but the header has 4 columns" in result.stdout
    assert "  - {when: {source: webinar}, value: 900}" in result.stdout


def test_threshold_calibration_with_the_agreement(tmp_path: Path) -> None:
    history = tmp_path / "history.csv"
    rows = ["source,activities,opportunity"]
    rows += ["webinar,demo_requested,1"] * 3 + ["webinar,demo_requested,0"] + ["ebook,ebook_downloaded,0"] * 4
    history.write_text("\n".join(rows) + "\n")
    result = slabot(tmp_path, "analyze", str(history), "--agreement", str(EXAMPLE_AGREEMENT),
                    "--target-rate", "0.5", "--min-leads", "2", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["thresholds"] == [
        {"score": 5, "leads": 8, "share": 1.0, "opportunity_rate": 3 / 8},
        {"score": 30, "leads": 4, "share": 0.5, "opportunity_rate": 0.75}]
    assert data["suggested_threshold"] == 30


@pytest.mark.parametrize(("args", "message"), [
    (["analyze", "missing.csv"], "cannot read missing.csv"),
    (["analyze", "h.csv", "--by", "offer"], "--by 'offer': use source or source,offer"),
    (["analyze", "h.csv", "--map", "source"], "use FIELD=COLUMN"),
    (["analyze", "h.csv", "--min-leads", "abc"], "'abc' is not a valid integer"),
    (["analyze", "h.csv", "--target-rate", "0.1"], "--target-rate needs --agreement"),
    (["analyze", "h.csv", "--baseline-rate", "2"], "a rate is a fraction"),
    (["analyze"], "give a HISTORY.csv file or --from-db"),
    (["analyze", "h.csv", "--map", "source=Nope"], "the header has no column 'Nope'"),
    (["plan", "--deal-size", "10"], "--bookings"),
    (["plan", "--bookings", "100", "--deal-size", "10", "--win-rate", "0.2"], "supply --opportunity-rate R"),
    (["plan", "--bookings", "100", "--deal-size", "10", "--per", "week"], "'week' is not one of"),
])
def test_mistakes_are_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "h.csv").write_text("source,won\nx,1\n")
    result = slabot(tmp_path, *args)
    assert result.returncode == 2, result.stdout
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_plan_json_and_table(tmp_path: Path) -> None:
    result = slabot(tmp_path, "plan", "--bookings", "3000000", "--deal-size", "25000", "--per", "year",
                    "--win-rate", "0.2", "--opportunity-rate", "0.12", "--reps", "7", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    # 120 deals, 600 opportunities, 5,000 workable leads a year: 416.67 a month, 59.52 -> 60 per rep
    assert data["deals"] == pytest.approx(120) and data["opportunities"] == pytest.approx(600)
    assert data["workable_leads"] == pytest.approx(5000)
    assert data["per_month"]["workable_leads"] == pytest.approx(5000 / 12)
    assert data["per_rep_per_month"] == {"deals": 2, "opportunities": 8, "workable_leads": 60}
    assert data["lead_value_per_month"] == pytest.approx(250_000)
    table = slabot(tmp_path, "plan", "--bookings", "3000000", "--deal-size", "25000", "--win-rate", "0.2",
                   "--opportunity-rate", "0.12", "--reps", "7")
    assert "workable_leads_per_rep_per_month: 60" in table.stdout
    assert "lead_value_goal_per_month: 250000" in table.stdout
