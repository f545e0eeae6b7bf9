"""Reading a history CSV: mapping, segments, bad rows by line number, never fatal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from commands.analyze import MAX_FIELD, AnalyzeError, Options, analyze_csv, parse_by, parse_map
from sla.agreement import load_agreement
from tests.conftest import EXAMPLE_AGREEMENT


def run(tmp_path: Path, content: str | bytes, **options: Any) -> dict[str, Any]:
    path = tmp_path / "history.csv"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return analyze_csv(path, Options(**options)).to_json()


def segment(data: dict[str, Any], **key: str | None) -> dict[str, Any]:
    return next(s for s in data["segments"] if s["key"] == key)


def test_mixed_case_blank_and_bad_rows(tmp_path: Path) -> None:
    data = run(tmp_path, (
        "source,opportunity,won,amount\n"            # line 1
        "Webinar,yes,,\n"                            # 2
        " webinar ,no,no,\n"                         # 3
        "WEBINAR,,Y,1200.50\n"                       # 4
        "webinar,1,1,lots\n"                         # 5: bad amount
        "ebook,0\n"                                  # 6: too few cells
        ",TRUE,,\n"                                  # 7: blank source
        "   ,false,,\n"                              # 8: blank source
        "\n"                                         # 9: a blank line is no row
        ",,,\n"                                      # 10: empty cells are no row
        "\"Direct\nTraffic\",y,,\n"                  # 11-12: a quoted newline: one row, normalized
        "direct-traffic,x,0,-\n"                     # 13: bad amount again
    ), min_leads=1)
    assert data["bad_rows"] == [
        {"line": 5, "error": "amount 'lots' is not a number"},
        {"line": 6, "error": "2 cells, but the header has 4 columns"},
        {"line": 13, "error": "amount '-' is not a number"},
    ]
    assert data["bad_row_count"] == 3 and data["rows"] == 9 and data["leads"] == 6
    webinar = segment(data, source="webinar")
    assert (webinar["leads"], webinar["opportunities"], webinar["won"], webinar["bookings"]) == (3, 2, 1, 1200.5)
    assert webinar["value_per_lead"] == pytest.approx(400.1666, abs=1e-3)
    blank = segment(data, source=None)
    assert (blank["leads"], blank["opportunities"]) == (2, 1)
    assert segment(data, source="direct_traffic")["leads"] == 1
    assert {s["key"]["source"] for s in data["segments"]} == {"webinar", None, "direct_traffic"}


def test_by_source_and_offer_with_mapped_columns(tmp_path: Path) -> None:
    data = run(tmp_path, (
        "Lead Source,Offer Name,Converted\n"
        "Webinar,Pricing Guide,1\nwebinar,pricing-guide,0\nWebinar,,1\nEbook,Pricing Guide,0\n"
    ), by=parse_by("source,offer"), mapping=parse_map(["source=Lead Source", "offer=offer name",
                                                        "opportunity=Converted"]), min_leads=1)
    keys = [(s["key"]["source"], s["key"]["offer"], s["leads"], s["opportunities"]) for s in data["segments"]]
    assert keys == [("webinar", "pricing_guide", 2, 1), ("ebook", "pricing_guide", 1, 0), ("webinar", None, 1, 1)]
    assert "{when: {source: webinar, offer: pricing_guide}" in data["segments_yaml"]


def test_undecodable_and_oversized_rows_are_bad_rows_not_fatal(tmp_path: Path) -> None:
    big = "x" * (MAX_FIELD + 1)
    content = (b"source,opportunity\n"
               b"webinar,1\n"
               b"caf\xe9,1\n"                                     # line 3: Latin-1, not UTF-8
               + f"{big},1\n".encode()                             # line 4: a field over 128 KiB
               + b"webinar,0\n")                                   # line 5
    data = run(tmp_path, content, min_leads=1)
    assert data["bad_rows"] == [{"line": 3, "error": "not UTF-8 text"},
                                {"line": 4, "error": "a field is over 128 KiB"}]
    assert data["leads"] == 2 and segment(data, source="webinar")["opportunities"] == 1


def test_a_utf8_bom_and_crlf_line_ends_are_read(tmp_path: Path) -> None:
    data = run(tmp_path, "\ufeffsource,won,amount\r\nDemo Request,yes,100\r\n", min_leads=1)
    assert segment(data, source="demo_request")["bookings"] == 100


@pytest.mark.parametrize(("content", "options", "message"), [
    ("", {}, "the file is empty"),
    ("lead source,opportunity\nx,1\n", {}, "no 'source' column: name it with --map source=COLUMN"),
    ("source,stage\nx,1\n", {}, "neither an 'opportunity' nor a 'won' column"),
    ("source,won\nx,1\n", {"mapping": {"opportunity": "Converted"}}, "the header has no column 'Converted'"),
    (b"sourc\xe9,won\nx,1\n", {}, "the header (line 1): not UTF-8 text"),
])
def test_a_file_that_cannot_be_analyzed_is_one_clear_error(tmp_path: Path, content: str | bytes,
                                                           options: dict[str, Any], message: str) -> None:
    with pytest.raises(AnalyzeError) as caught:
        run(tmp_path, content, **options)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_option_parsing_errors() -> None:
    with pytest.raises(AnalyzeError, match="use FIELD=COLUMN"):
        parse_map(["source"])
    with pytest.raises(AnalyzeError, match="'sauce' is not a field"):
        parse_map(["sauce=Lead Source"])
    with pytest.raises(AnalyzeError, match="use source or source,offer"):
        parse_by("offer")
    assert parse_by("source, offer") == ("source", "offer")


def test_threshold_and_backtest_score_every_row_with_the_agreement(tmp_path: Path) -> None:
    agreement = load_agreement(EXAMPLE_AGREEMENT)
    # demo_requested = 30 points, webinar_attended = 10, careers_page_viewed = -20 (example agreement)
    content = (
        "source,activities,employees,stage,bant_need,bant_budget,received_at,opportunity\n"
        "webinar,demo_requested,50,solution_research,yes,yes,2026-10-05T14:00:00Z,1\n"      # 30, smb
        "webinar,demo_requested,50,solution_research,yes,yes,2026-10-06,0\n"                 # 30, smb
        "webinar,webinar_attended,5000,solution_research,yes,yes,2026-10-07,1\n"             # 10 nurture
        "webinar,careers_page_viewed,50,solution_research,yes,yes,2026-11-02,0\n"            # -20 nurture
        "webinar,demo_requested,lots,solution_research,yes,yes,2026-11-02,1\n"               # bad employees
        "webinar,demo_requested,50,solution_research,yes,yes,someday,1\n"                    # bad date
    )
    data = run(tmp_path, content, agreement=agreement, target_rate=0.5, min_leads=2)
    assert [b["line"] for b in data["bad_rows"]] == [6, 7]
    assert "employees" in data["bad_rows"][0]["error"] and "received_at" in data["bad_rows"][1]["error"]
    assert [(t["score"], t["leads"], t["share"], t["opportunity_rate"]) for t in data["thresholds"]] == [
        (-20, 4, 1.0, 0.5), (10, 3, 0.75, 2 / 3), (30, 2, 0.5, 0.5)]
    assert data["suggested_threshold"] == -20
    backtest = data["backtest"]
    months = {m["month"]: m for m in backtest["months"]}
    assert months["2026-10"]["workable"]["leads"] == 2 and months["2026-10"]["nurture"]["leads"] == 1
    assert months["2026-11"]["workable"]["leads"] == 0 and months["2026-11"]["nurture"]["leads"] == 1
    smb = next(t for t in backtest["teams"] if t["team"] == "smb")
    assert smb["peak_per_week"] == 2 and smb["weeks"] == 2   # ISO weeks 41 and 45 had leads


def test_without_an_agreement_there_is_no_threshold_table(tmp_path: Path) -> None:
    data = run(tmp_path, "source,opportunity\nwebinar,1\n")
    assert data["thresholds"] == [] and data["suggested_threshold"] is None and data["backtest"] is None
