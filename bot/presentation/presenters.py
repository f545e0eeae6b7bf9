"""Domain objects -> neutral cards: which facts a card shows and which buttons the state allows."""

from __future__ import annotations

from bot.presentation.cards import Button, Card, Fact, Mention, Option
from commands import labels
from commands.context import Context
from commands.labels import local_time
from sla.lifecycle import Action, State, allowed_actions
from storage.tables import Lead

_LABELS = {
    Action.CLAIM: ("Claim", "primary"), Action.LOG_CALL: ("Log call", None),
    Action.LOG_EMAIL: ("Log email", None), Action.CONNECTED: ("Connected", None),
    Action.QUALIFY: ("Opportunity", "primary"), Action.DISQUALIFY: ("Disqualify", "danger"),
    Action.RECYCLE: ("Back to nurture", None), Action.REASSIGN: ("Reassign", None),
}


def money(ctx: Context, amount: float | None) -> str:
    """An amount in the agreement's currency: "$2,400"."""
    return labels.money(amount, ctx.agreement.currency)


def owner_mention(ctx: Context, lead: Lead) -> Mention | None:
    rep = ctx.agreement.rep(lead.owner or "")
    return Mention(name=rep.name, slack=rep.slack, teams=rep.teams) if rep else None


def lead_card(ctx: Context, lead: Lead) -> Card:
    assert lead.id is not None
    state = State(lead.state)
    tier = ctx.clocks.tier(lead.tier) if lead.tier else None
    subtitle = " · ".join(p for p in (lead.title, lead.company) if p) or "no title or company given"
    payload = lead.payload or {}
    bant = payload.get("bant") or {}
    attempts = (f"{lead.attempts} of {tier.attempts.count} within {labels.duration(tier.attempts.within)}"
                if tier else str(lead.attempts))
    scored = "; ".join(labels.score_reason(r) for r in lead.score_reasons) or "no scoring rule matched"
    source = labels.source(lead.source) if lead.source else "unknown"
    offer = labels.offer(lead.offer) if lead.offer else "unknown"
    facts = [
        Fact("Company size", f"{lead.employees:,} employees" if lead.employees is not None else "unknown"),
        Fact("Source / offer", f"{source} / {offer}"),
        Fact("Score", f"{lead.score} ({scored})"),
        Fact("Tier", f"{labels.tier(lead.tier)} (first touch within {labels.duration(tier.first_touch_within)})"
             if tier else "n/a"),
        Fact("Value", money(ctx, lead.value)),
        Fact("BANT", labels.bant_summary(bant)),
        Fact("First touch due", local_time(ctx, lead.first_touch_due)),
        Fact("Attempts", attempts),
    ]
    if lead.experiment:
        experiment = ctx.agreement.experiment(lead.experiment)
        why = labels.nurture_reason(lead.nurture_reason).lower() if lead.nurture_reason else "not workable"
        facts.append(Fact("Experiment", f"{experiment.label if experiment else lead.experiment}: sent to Sales "
                                        f"as a trial, though the agreement would keep it in nurture ({why})"))
    if lead.first_touch_at:
        met = "within the SLA" if lead.first_touch_met else "SLA missed"
        facts.append(Fact("First touch", f"{local_time(ctx, lead.first_touch_at)} ({met})"))
    if lead.disqualify_reason:
        facts.append(Fact("Reason", labels.disqualify_reason(lead.disqualify_reason)))
    if lead.opportunity_amount is not None:
        facts.append(Fact("Opportunity", money(ctx, lead.opportunity_amount)))
    owner = owner_mention(ctx, lead)
    buttons = tuple(_button(ctx, lead, action) for action in allowed_actions(state))
    status = labels.state(state.value)
    owner_text = owner.name if owner else "unassigned (any rep of the team may claim)"
    return Card(
        title=lead.name, subtitle=subtitle, status=status, facts=tuple(facts),
        reasons=tuple(labels.qualification_reason(r) for r in lead.reasons), buttons=buttons, owner=owner,
        link=("Open in CRM", lead.crm_url) if lead.crm_url else None,
        fallback=f"Lead {lead.name} ({subtitle}): {status}, owner {owner_text}, first touch due "
                 f"{local_time(ctx, lead.first_touch_due)}",
        lead_id=lead.id, version=lead.version,
    )


def _button(ctx: Context, lead: Lead, action: Action) -> Button:
    assert lead.id is not None
    label, style = _LABELS[action]
    options: tuple[Option, ...] = ()
    if action is Action.DISQUALIFY:
        options = tuple(Option(labels.disqualify_reason(r), r) for r in ctx.agreement.sales.disqualify_reasons)
    if action is Action.REASSIGN:
        team = ctx.agreement.team(lead.team or "")
        options = tuple(Option(r.name, r.key) for r in (team.reps if team else []) if r.key != lead.owner)
    return Button(action=action, label=label, lead_id=lead.id, version=lead.version,
                  style=style, options=options,  # type: ignore[arg-type]
                  asks_amount=action is Action.QUALIFY)
