"""A lead history of any size for the status, digest and memory benchmarks, generated inside SQLite.

`history_db(total)` builds (once per process, cached in a temporary directory removed at exit) a
migrated SQLite database holding `total` leads handed off at a steady MONTHLY_VOLUME leads a month
and ending at END, so every size has the same latest month and only the length of the history
differs (1,000,000 leads = 24 months). One `received` event per lead goes into `lead_event`.

The rows are realistic enough for the metric queries to do their real work: about 68% workable
(the rest nurture: a list purchase is never workable), a hot tier for a quarter of them, five reps
in two teams (the example agreement's), 95% first touched (70% within minutes, the rest after up
to five hours, so both met and missed deadlines), 1-6 attempts with a connect on a third, cards
posted 1-6 s after routing (speeds and delays fractional, as real ones are); leads older than ten
days are closed (opportunities, won, lost, disqualified with a reason, recycled), younger ones are
open (routed, claimed, working, connected), and the untouched open ones past their deadline are
open breaches. Nothing happens after END.
"""

from __future__ import annotations

import atexit
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from storage.db import Database

#: The instant the history ends and the benchmarks ask "as of": Tuesday 2026-11-24 10:00 New York.
END = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
#: 1,000,000 leads over 24 months.
MONTHLY_VOLUME = 1_000_000 / 24
MONTH_S = 365.25 / 12 * 86400
DAY = 86400

_cache: dict[int, Path] = {}
_root: Path | None = None


def _directory() -> Path:
    global _root
    if _root is None:
        _root = Path(tempfile.mkdtemp(prefix="slabot-bench-history-"))
        atexit.register(shutil.rmtree, _root, True)
    return _root


def history_db(total: int) -> Path:
    """The SQLite file of a `total`-lead history (built on first use in this process)."""
    if total not in _cache:
        path = _directory() / f"history-{total}.db"
        started = time.perf_counter()
        build(path, total)
        print(f"  generated {total:,} leads of history in {time.perf_counter() - started:.0f} s "
              f"({path.stat().st_size / 2**20:.0f} MB)", file=sys.stderr, flush=True)
        _cache[total] = path
    return _cache[total]


def url(path: Path) -> str:
    return f"sqlite:///{path}"


def _ts(epoch: str) -> str:
    """An epoch-seconds SQL expression as SQLAlchemy stores instants on SQLite (naive UTC text)."""
    return f"strftime('%Y-%m-%d %H:%M:%f000', {epoch}, 'unixepoch')"


#: Real speeds to lead (business minutes) and system delays (seconds) are fractional, nearly one
#: distinct value per lead: so are these (a thousandth's steps), or the percentiles' sort would
#: see a few hundred distinct values where real data has tens of thousands.
FRACTION = "(i * 7919 % 1000) / 1000.0"
DELAY = "(1 + q % 5 + (i * 7907 % 1000) / 1000.0)"


def build(path: Path, total: int) -> None:
    db = Database(url(path))
    db.upgrade()
    db.dispose()
    end = END.timestamp()
    span = total / MONTHLY_VOLUME * MONTH_S
    step = span / total
    start = end - span
    window = "CASE WHEN hot THEN 15 ELSE 120 END"
    sql = f"""
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {total - 1}),
b AS (SELECT i, {start} + (i + 0.5) * {step} AS t, (i * 2654435761 + 12345) % 2147483647 AS h FROM n),
c AS (
  SELECT i, t, h % 100 AS p, (h / 100) % 100 AS q, (h / 10000) % 1000 AS r, (h / 10000000) % 100 AS s,
         20 + (h / 1000) % 4000 AS employees
  FROM b),
d AS (
  SELECT *,
    CASE WHEN p < 30 THEN 'webinar' WHEN p < 50 THEN 'demo_request' WHEN p < 75 THEN 'ebook'
         WHEN p < 85 THEN 'list_purchase' ELSE 'paid_search' END AS source,
    (p < 75 OR p >= 85) AND q < 80 AS w,
    s < 25 AS hot,
    CASE WHEN r < 700 THEN 1 + r % 60 ELSE 60 + r % 300 END AS speed
  FROM c),
e AS (
  SELECT *,
    CASE WHEN w AND s < 95 AND t + speed * 60 <= {end} THEN t + speed * 60 END AS ft,
    w AND {end} - t < 10 * {DAY} AS opn
  FROM d),
f AS (
  SELECT *,
    CASE WHEN ft IS NULL THEN 0 ELSE 1 + q % 6 END AS attempts,
    CASE WHEN NOT w THEN 'nurture'
         WHEN opn THEN CASE WHEN ft IS NULL THEN (CASE WHEN q % 2 = 0 THEN 'claimed' ELSE 'routed' END)
                             WHEN q % 3 = 0 THEN 'connected' ELSE 'working' END
         WHEN ft IS NULL THEN (CASE WHEN q % 2 = 0 THEN 'disqualified' ELSE 'recycled' END)
         WHEN s < 10 THEN 'qualified' WHEN s < 14 THEN 'won' WHEN s < 18 THEN 'lost'
         WHEN s < 40 THEN 'disqualified' ELSE 'recycled' END AS state
  FROM e),
g AS (
  SELECT *,
    CASE WHEN state IN ('qualified', 'won', 'lost') THEN t + (2 + q % 5) * {DAY} END AS opp,
    CASE WHEN w AND NOT opn THEN min(t + (3 + q % 7) * {DAY}, {end} - 1) END AS closed
  FROM f)
INSERT INTO lead (
  id, external_id, agreement_version, email, name, title, company, employees, source, offer, crm_url,
  payload, received_at, handed_off_at, workable, score, score_reasons, reasons, nurture_reason, persona,
  value, tier, state, is_open, version, team, owner, previous_owners, routing_reason, routed_at,
  owner_since, claim_due, first_touch_due, sla_due, claimed_at, first_touch_at, first_touch_met,
  speed_to_lead_min, card_posted_at, system_delay_s, attempts, calls, emails, connects, last_attempt_at,
  next_check_at, nudge_steps_done, cadence_reminded, cadence_warned, owner_seq, closed_at,
  disqualify_reason, opportunity_at, opportunity_amount, won_at, bookings, lost_at)
SELECT
  i + 1, 'hist-' || i, 'bench', 'lead' || i || '@example.com', 'Lead ' || i, 'Head of Operations',
  'Company ' || (i % 20000), employees, source,
  CASE source WHEN 'webinar' THEN (CASE WHEN q % 2 = 0 THEN 'q4-webinar' ELSE 'q3-webinar' END)
              WHEN 'demo_request' THEN 'demo' WHEN 'ebook' THEN 'sla-ebook'
              WHEN 'paid_search' THEN 'pricing' END,
  'https://crm.example/contacts/' || i,
  json_object('external_id', 'hist-' || i, 'email', 'lead' || i || '@example.com', 'first_name', 'Lead',
              'last_name', '' || i, 'company', 'Company ' || (i % 20000), 'employees', employees,
              'source', source, 'stage', 'solution_research'),
  {_ts('t - 30')}, {_ts('t')}, w,
  CASE WHEN NOT w THEN q % 20 WHEN hot THEN 40 + q % 30 ELSE 20 + q % 20 END,
  '["+30 activity=demo_requested"]', '[]',
  CASE WHEN NOT w THEN (CASE WHEN source = 'list_purchase' THEN 'segment' ELSE 'score' END) END,
  CASE WHEN employees >= 1000 THEN 'mid_market' ELSE 'smb' END,
  CASE source WHEN 'webinar' THEN 900 WHEN 'demo_request' THEN 2400 WHEN 'ebook' THEN 300 ELSE 500 END,
  CASE WHEN NOT w THEN NULL WHEN hot THEN 'hot' ELSE 'standard' END,
  state, opn, 1 + attempts,
  CASE WHEN w THEN (CASE WHEN employees >= 1000 THEN 'midmarket' ELSE 'smb' END) END,
  CASE WHEN NOT w THEN NULL WHEN employees >= 1000 THEN (CASE r % 2 WHEN 0 THEN 'eve' ELSE 'fay' END)
       ELSE (CASE r % 3 WHEN 0 THEN 'ana' WHEN 1 THEN 'ben' ELSE 'cho' END) END,
  '[]', CASE WHEN w THEN 'round robin' END,
  CASE WHEN w THEN {_ts('t')} END, CASE WHEN w THEN {_ts('t')} END,
  CASE WHEN w THEN {_ts('t + 600')} END,
  CASE WHEN w THEN {_ts(f't + {window} * 60')} END, CASE WHEN w THEN {_ts(f't + {window} * 60')} END,
  CASE WHEN ft IS NOT NULL THEN {_ts('ft')} WHEN w AND state = 'claimed' THEN {_ts('t + 120')} END,
  CASE WHEN ft IS NOT NULL THEN {_ts('ft')} END,
  CASE WHEN ft IS NOT NULL THEN speed <= {window} END,
  CASE WHEN ft IS NOT NULL THEN speed - {FRACTION} END,
  CASE WHEN w THEN {_ts(f't + {DELAY}')} END, CASE WHEN w THEN {DELAY} END,
  attempts, attempts - attempts / 3, attempts / 3, CASE WHEN ft IS NOT NULL AND q % 3 = 0 THEN 1 ELSE 0 END,
  CASE WHEN ft IS NOT NULL THEN {_ts(f'min(ft + (attempts - 1) * {DAY}, {end} - 1)')} END,
  CASE WHEN opn THEN {_ts(f'{end} + 3600 + r * 60')} END,
  0, 0, 0, 1,
  {_ts('closed')},
  CASE WHEN state = 'disqualified' THEN (CASE q % 4 WHEN 0 THEN 'no_budget' WHEN 1 THEN 'no_need'
       WHEN 2 THEN 'duplicate' ELSE 'competitor' END) END,
  {_ts('opp')}, CASE WHEN opp IS NOT NULL THEN 5000 + (r % 46) * 1000 END,
  CASE WHEN state = 'won' THEN {_ts(f'min(opp + 10 * {DAY}, {end} - 1)')} END,
  CASE WHEN state = 'won' THEN 0.9 * (5000 + (r % 46) * 1000) END,
  CASE WHEN state = 'lost' THEN {_ts(f'min(opp + 10 * {DAY}, {end} - 1)')} END
FROM g
"""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-200000")
        connection.execute("BEGIN")
        connection.execute(sql)
        connection.execute(
            "INSERT INTO lead_event (lead_id, at, actor, type, data) "
            "SELECT id, handed_off_at, 'api', 'received', json_object('score', score) FROM lead ORDER BY id")
        connection.execute("COMMIT")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
