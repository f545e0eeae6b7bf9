"""The desk's queries on SQLite and PostgreSQL: keyset pages in both orders, search with LIKE
wildcards taken literally, the at-risk and breached views, and a sign-in link spent only once."""

from __future__ import annotations

from datetime import timedelta

from commands import desk
from commands.context import Context
from commands.intake import handoff
from sla.agreement import Agreement
from sla.clock import FixedClock
from sla.lead import LeadIn
from storage.db import Database
from storage.desk import LeadFilter, lead_page, signin_for, spend_signin
from tests.conftest import T0
from tests.desk.helpers import lead_body


def _leads(ctx: Context, clock: FixedClock) -> list[int]:
    ids = []
    for i, (name, company) in enumerate([("Ann 100%", "Globex"), ("Bob_Smith", "Initech"), ("Cy", "Umbrella"),
                                         ("Dee", "Globex"), ("Eli", "Hooli")]):
        body = lead_body(name=name, company=company, email=f"p{i}@example.com", external_id=f"x-{i}")
        ids.append(handoff(ctx, LeadIn.model_validate(body)).lead.id)
        clock.advance(timedelta(minutes=1))
    return [i for i in ids if i is not None]


def test_pages_search_and_views(any_db: Database, agreement: Agreement) -> None:
    clock = FixedClock(T0)
    ctx = Context(db=any_db, agreement=agreement, clock=clock)
    ids = _leads(ctx, clock)
    now = clock.now()
    with any_db.read() as session:
        seen, after = [], None
        while True:
            rows, after = lead_page(session, LeadFilter(), now=now, after=after, limit=2)
            seen += [r.id for r in rows]
            if after is None:
                break
        assert seen == sorted(ids, reverse=True)   # newest first, each lead once

        def names(f: LeadFilter) -> set[str]:
            return {r.name for r in lead_page(session, f, now=now, after=None, limit=50)[0]}

        assert names(LeadFilter(q="100%")) == {"Ann 100%"}      # % is a character, not a wildcard
        assert names(LeadFilter(q="b_s")) == {"Bob_Smith"}
        assert names(LeadFilter(q="GLOBEX")) == {"Ann 100%", "Dee"}
        assert names(LeadFilter(q="p2@example")) == {"Cy"}

        risky, after = [], None
        while True:
            rows, after = lead_page(session, LeadFilter(flag="at_risk"), now=now, after=after, limit=2)
            risky += rows
            if after is None:
                break
        dues = [r.first_touch_due for r in risky if r.first_touch_due is not None]
        assert len(risky) == len(dues) == 5 and dues == sorted(dues)   # time left, shortest first
        later = now + timedelta(hours=3)
        assert len(lead_page(session, LeadFilter(flag="breached"), now=later, after=None, limit=50)[0]) == 5
        assert lead_page(session, LeadFilter(flag="at_risk"), now=later, after=None, limit=50)[0] == []


def test_a_link_is_spent_once(any_db: Database, agreement: Agreement) -> None:
    clock = FixedClock(T0)
    ctx = Context(db=any_db, agreement=agreement, clock=clock)
    url = desk.signin_link(ctx, key="rep:eve", base_url="http://desk.example")
    digest = desk.token_hash(url.rsplit("/", 1)[1])
    with any_db.write() as session:
        assert signin_for(session, token_hash=digest, now=clock.now()) is not None
        spent = spend_signin(session, token_hash=digest, now=clock.now())
        assert spent is not None and spent.person == "rep:eve"
    with any_db.write() as session:
        assert spend_signin(session, token_hash=digest, now=clock.now()) is None
        assert signin_for(session, token_hash=digest, now=clock.now()) is None
    late = desk.signin_link(ctx, key="rep:eve", base_url="http://desk.example")
    with any_db.write() as session:
        assert spend_signin(session, token_hash=desk.token_hash(late.rsplit("/", 1)[1]),
                            now=clock.now() + timedelta(minutes=10)) is None
