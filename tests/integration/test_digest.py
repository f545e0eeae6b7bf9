"""Daily digests on a real SQLite database with an injected clock: once per recipient per local day
(with one catch-up after downtime, never a backlog), the same numbers as storage.metrics.status,
the chart, team-scoped channel and manager digests."""

from __future__ import annotations

import base64
import struct
from datetime import date, datetime, timedelta

import pytest
from sqlmodel import col, select

from commands.actions import ActionRequest, perform
from commands.context import Context
from commands.digest import build_digest, digest_chart, queue_due_digests
from commands.labels import business_time
from sla.agreement import Agreement, Digest
from sla.clock import FixedClock
from sla.lifecycle import Action
from storage.db import Database
from storage.metrics import status
from storage.tables import ChannelBinding, JobRun, OutboxMessage
from tests.integration.test_engine import act, lead_in, local, rep_actor, route

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
VPS = {"marketing_vp": "Maya Lin", "sales_vp": "Sam Ortiz"}
CHANNELS = {"team:smb": "#smb", "team:midmarket": "#midmarket"}


def digest_rows(ctx: Context) -> list[OutboxMessage]:
    with ctx.db.read() as session:
        return list(session.execute(select(OutboxMessage).where(col(OutboxMessage.kind) == "digest")
                                    .order_by(col(OutboxMessage.id))).scalars())


def keys_for(day: date, recipients: dict[str, str]) -> set[str]:
    return {f"digest:{r}:console:{day.isoformat()}" for r in recipients}


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# --- schedule ------------------------------------------------------------------------------------


def test_digests_go_out_once_per_recipient_per_local_day(ctx: Context) -> None:
    tue, wed, fri = date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 27)
    assert queue_due_digests(ctx, now=local(2026, 11, 24, 8, 29)) == []
    assert set(queue_due_digests(ctx, now=local(2026, 11, 24, 8, 31))) == keys_for(tue, VPS)
    assert queue_due_digests(ctx, now=local(2026, 11, 24, 8, 31)) == []          # replayed tick
    assert queue_due_digests(ctx, now=local(2026, 11, 24, 8, 59)) == []
    # The 09:00 team-channel digest; the VPs' 08:30 one is not repeated.
    assert set(queue_due_digests(ctx, now=local(2026, 11, 24, 9, 30))) == keys_for(tue, CHANNELS)
    for at in (local(2026, 11, 24, 9, 30), local(2026, 11, 24, 17, 0), local(2026, 11, 24, 23, 59)):
        assert queue_due_digests(ctx, now=at) == []
    # Down from Tuesday night until Wednesday 14:00: the first tick catches up, once.
    assert set(queue_due_digests(ctx, now=local(2026, 11, 25, 14, 0))) == keys_for(wed, VPS | CHANNELS)
    assert queue_due_digests(ctx, now=local(2026, 11, 25, 14, 0, 30)) == []
    # Down all of Thursday: Friday sends Friday's digests only, never Thursday's as well.
    assert set(queue_due_digests(ctx, now=local(2026, 11, 27, 10, 0))) == keys_for(fri, VPS | CHANNELS)
    # The weekend is not in the digests' days.
    assert queue_due_digests(ctx, now=local(2026, 11, 28, 10, 0)) == []

    rows = digest_rows(ctx)
    assert len(rows) == 12 and len({r.dedupe_key for r in rows}) == 12
    assert not any("2026-11-26" in r.dedupe_key for r in rows)
    assert sorted({r.target for r in rows}) == ["#midmarket", "#smb", "Maya Lin", "Sam Ortiz"]
    with ctx.db.read() as session:
        runs = session.execute(select(JobRun.period_key).where(col(JobRun.job) == "digest")).scalars().all()
    assert sorted(runs) == sorted(k.removeprefix("digest:") for k in (r.dedupe_key for r in rows))


def test_digest_times_are_local_across_dst(ctx: Context) -> None:
    # 08:30 in New York is 12:30Z on Friday 2026-10-30 (EDT) and 13:30Z on Monday 11-02 (EST).
    assert queue_due_digests(ctx, now=datetime.fromisoformat("2026-10-30T12:29:00+00:00")) == []
    assert len(queue_due_digests(ctx, now=datetime.fromisoformat("2026-10-30T12:30:00+00:00"))) == 2
    assert queue_due_digests(ctx, now=datetime.fromisoformat("2026-11-02T13:29:00+00:00")) == []
    assert len(queue_due_digests(ctx, now=datetime.fromisoformat("2026-11-02T13:30:00+00:00"))) == 2


def test_force_ignores_the_schedule_but_not_the_day(ctx: Context) -> None:
    """`slabot digest --send` at 07:00 on a Saturday: everyone, once."""
    saturday = local(2026, 11, 28, 7, 0)
    assert len(queue_due_digests(ctx, now=saturday, force=True)) == 4
    assert queue_due_digests(ctx, now=saturday + timedelta(hours=1), force=True) == []


# --- content -------------------------------------------------------------------------------------


def populate(ctx: Context, clock: FixedClock) -> None:
    """A small month: hot and standard leads over two teams, a nurture lead, touches, a connect, an
    opportunity, a disqualification and untouched breaches."""
    leads = []
    for i, at in enumerate([local(2026, 11, 2, 10, 0), local(2026, 11, 9, 11, 0), local(2026, 11, 16, 12, 0),
                            local(2026, 11, 20, 9, 30), local(2026, 11, 23, 15, 0), local(2026, 11, 24, 9, 15)]):
        leads.append(route(ctx, clock, at, lead_in(f"Lead S{i}", hot=i % 2 == 0, source="webinar" if i % 3 else
                                                   "demo_request")))
        leads.append(route(ctx, clock, at + timedelta(minutes=2),
                           lead_in(f"Lead M{i}", hot=i % 2 == 1, employees=2400)))
    route(ctx, clock, local(2026, 11, 23, 16, 0), lead_in("Nurture Person", hot=False, stage="awareness"))
    first, second, third = leads[0], leads[1], leads[2]
    assert first.id and second.id and third.id
    act(ctx, clock, local(2026, 11, 2, 10, 5), first.id, Action.LOG_CALL, first.owner or "")
    act(ctx, clock, local(2026, 11, 2, 10, 30), first.id, Action.CONNECTED, first.owner or "")
    clock.set(local(2026, 11, 3, 11, 0))
    assert not perform(ctx, ActionRequest(lead_id=first.id, action=Action.QUALIFY,
                                          actor=rep_actor(ctx, first.owner or ""),
                       amount=24000)).refused
    act(ctx, clock, local(2026, 11, 2, 15, 0), second.id, Action.LOG_EMAIL, second.owner or "")
    clock.set(local(2026, 11, 10, 10, 0))
    assert not perform(ctx, ActionRequest(lead_id=third.id, action=Action.DISQUALIFY,
                                          actor=rep_actor(ctx, third.owner or ""),
                       reason="no_budget")).refused


def test_digest_numbers_are_exactly_those_of_status(ctx: Context, clock: FixedClock) -> None:
    populate(ctx, clock)
    as_of = local(2026, 11, 24, 10, 0)
    content = build_digest(ctx, as_of=as_of)
    with ctx.db.read() as session:
        expected = status(session, agreement=ctx.agreement, calendar=ctx.calendar, as_of=as_of,
                          scope="all").model_dump(mode="json")
    assert content.numbers is not None and content.numbers.model_dump(mode="json") == expected
    m, s = expected["marketing"], expected["sales"]
    assert m["workable"] == 12 and m["nurture"] == 1 and s["open_breaches"] >= 1   # the data is not empty

    sections = dict(content.sections)
    marketing, sales = sections["Marketing: leads delivered"], sections["Sales: every lead worked"]
    assert marketing[0].startswith(f"Workable leads this month: {m['workable']} of a {m['goal']} goal")
    assert marketing[1].startswith(f"Pace: {round(m['pace'] * 100, 1):g}% of the pace the goal needs")
    assert marketing[2] == f"Month end: on pace for {m['projected']:,.0f} of {m['goal']} workable leads"
    assert f"Lead value this month: ${m['value']:,.0f} of a ${m['value_goal']:,.0f} goal" == marketing[3]
    assert marketing[4] == "By source: " + ", ".join(
        f"{ {'webinar': 'Webinar', 'demo_request': 'Demo request'}[k]} {n}" for k, n in m["mix"]["source"].items())
    assert f"In nurture (not workable yet): {m['nurture']} lead" in marketing
    assert f"Rejected by Sales: {expected['rejected']['total']} lead (No budget 1)" in marketing
    assert sales[0] == (f"Worked: {round(s['worked_pct'] * 100, 1):g}% of {s['cohort']} leads due "
                        "(past their first-touch deadline or already touched)")
    assert sales[1] == f"Touched within the SLA: {round(s['within_sla_pct'] * 100, 1):g}%"
    assert (f"median first touch {business_time(s['speed_to_lead_p50'])} "
            f"(90% within {business_time(s['speed_to_lead_p90'])}), in business time") in sales[2]
    assert f"{round(s['connect_rate'] * 100, 1):g}% of worked leads connected" in sales[3]
    assert f"${s['pipeline_value']:,.0f} pipeline" in sales[4]
    assert sales[5] == f"Open breaches: {s['open_breaches']} leads past the first-touch deadline with no touch"
    # Identifiers never reach a person: reasons, sources and BANT keys are phrases.
    for raw in ("no_budget", "demo_request", "Cohort", "business min", "MTD", "p50"):
        assert raw not in content.text
    breaches = sections["Open breaches"]
    for breach, line in zip(expected["breaches"][:10], breaches, strict=False):
        assert line.startswith(breach["name"]) and f"owner {breach['owner_name']}" in line
        assert f"{business_time(breach['minutes_overdue'])} overdue" in line
    yesterday = sections[next(h for h in sections if h.startswith("Yesterday"))]
    assert yesterday[0] == (f"Workable leads handed off: {expected['yesterday']['workable']}; "
                            f"to nurture: {expected['yesterday']['nurture']}")
    assert content.text.startswith(content.title) and "Open breaches" in content.text

    # The chart's today point is the same workable count.
    with ctx.db.read() as session:
        days, actual, goal = digest_chart(session, ctx, as_of=as_of, team=None, goal_total=m["goal"])
    assert len(days) == 30 and days[0] == date(2026, 11, 1) and len(actual) == 24
    assert actual[-1] == m["workable"] and actual == sorted(actual)
    assert goal[-1] == pytest.approx(m["goal"]) and goal[0] == 0.0          # Nov 1 is a Sunday


def test_team_digest_numbers_are_the_teams(ctx: Context, clock: FixedClock) -> None:
    populate(ctx, clock)
    as_of = local(2026, 11, 24, 10, 0)
    content = build_digest(ctx, as_of=as_of, team="smb")
    with ctx.db.read() as session:
        expected = status(session, agreement=ctx.agreement, calendar=ctx.calendar, as_of=as_of,
                          scope="team:smb").model_dump(mode="json")
    assert content.numbers is not None and content.numbers.model_dump(mode="json") == expected
    assert expected["scope"] == "team:smb"
    assert content.title == "SMB Inbound: daily SLA digest, Tue Nov 24"
    assert dict(content.sections)["Marketing: leads delivered"][0].startswith(
        f"Workable leads this month: {expected['marketing']['workable']} of a {expected['marketing']['goal']} "
        "goal (3 reps × 40 each)")


def test_chart_is_a_small_png(ctx: Context, clock: FixedClock) -> None:
    populate(ctx, clock)
    content = build_digest(ctx, as_of=local(2026, 11, 24, 10, 0))
    assert content.chart_png is not None
    assert png_size(content.chart_png) == (640, 320)
    assert 5_000 < len(content.chart_png) < 150_000


def test_an_empty_month_still_renders(ctx: Context) -> None:
    content = build_digest(ctx, as_of=local(2026, 12, 1, 8, 30))      # the first business day
    assert content.chart_png is not None and png_size(content.chart_png) == (640, 320)
    assert "Workable leads this month: 0 of a 200 goal" in content.text


# --- recipients and payloads ---------------------------------------------------------------------


def test_team_channel_digests_are_team_scoped(ctx: Context, clock: FixedClock) -> None:
    populate(ctx, clock)
    with ctx.db.write() as session:          # `/sla link smb` bound another channel
        session.add(ChannelBinding(team="smb", platform="console", channel="#smb-leads",
                                   bound_at=local(2026, 11, 1, 9, 0)))
    now = local(2026, 11, 24, 9, 0)
    # The service was already running before the 08:30 slot: a first-ever start at 09:00 would not
    # catch the VPs' 08:30 digest up (this test used to rely on that catch-up on a first start).
    assert queue_due_digests(ctx, now=local(2026, 11, 24, 8, 0)) == []
    queued = queue_due_digests(ctx, now=now)
    assert set(queued) == keys_for(date(2026, 11, 24), VPS | CHANNELS)
    rows = {r.dedupe_key.split(":")[2]: r for r in digest_rows(ctx) if r.dedupe_key.startswith("digest:team:")}
    smb, mid = rows["smb"], rows["midmarket"]
    assert (smb.target, mid.target) == ("#smb-leads", "#midmarket")
    assert smb.payload["to"] == "channel" and smb.payload["scope"] == "team:smb"
    assert smb.payload["title"] == "SMB Inbound: daily SLA digest, Tue Nov 24"
    assert smb.payload == build_digest(ctx, as_of=now, team="smb").payload(to="channel")
    vp = next(r for r in digest_rows(ctx) if r.target == "Maya Lin")
    assert vp.payload["to"] == "user" and vp.payload["scope"] == "all"
    assert [s["heading"] for s in vp.payload["sections"]][:3] == [
        "Marketing: leads delivered", "Sales: every lead worked", "Open breaches"]
    assert base64.b64decode(vp.payload["chart_png_b64"])[:8] == PNG_MAGIC


def test_managers_get_their_teams_digest_by_dm(db: Database, agreement: Agreement, clock: FixedClock) -> None:
    managers = agreement.model_copy(update={"digests": [Digest(to=["managers", "sales_vp"], at="07:45")]})
    ctx = Context(db=db, agreement=managers, clock=clock, platforms=("console",))
    assert queue_due_digests(ctx, now=local(2026, 11, 24, 7, 44)) == []
    queued = queue_due_digests(ctx, now=local(2026, 11, 24, 7, 45))
    assert sorted(queued) == ["digest:manager:midmarket:console:2026-11-24", "digest:manager:smb:console:2026-11-24",
                              "digest:sales_vp:console:2026-11-24"]
    by_target = {r.target: r.payload for r in digest_rows(ctx)}
    assert by_target["Priya Shah"]["title"].startswith("SMB Inbound:") and by_target["Priya Shah"]["to"] == "user"
    assert by_target["Diego Alvarez"]["scope"] == "team:midmarket"
    assert by_target["Sam Ortiz"]["scope"] == "all"


def test_each_platform_gets_its_own_digest(db: Database, agreement: Agreement, clock: FixedClock) -> None:
    ctx = Context(db=db, agreement=agreement, clock=clock, platforms=("slack", "teams"))
    assert queue_due_digests(ctx, now=local(2026, 11, 24, 8, 0)) == []   # running before 08:30 (see above)
    queued = queue_due_digests(ctx, now=local(2026, 11, 24, 9, 0))
    rows = digest_rows(ctx)
    # Slack: the VPs' ids and the channels; Teams: the VPs by e-mail (no Teams channel is configured).
    assert sorted((r.platform, r.target) for r in rows) == [
        ("slack", "C0MID00001"), ("slack", "C0SMB00001"), ("slack", "U0MAYA0001"), ("slack", "U0SAM00001"),
        ("teams", "maya@acme.example"), ("teams", "sam@acme.example")]
    assert len(queued) == 6
