"""How the CLI shows dunning: policies, one invoice's case, held steps, dry runs and payer histories as
rich tables for people, and JSON for programs (amounts as integers in minor units, times as the
service gives them: RFC 3339 in UTC, dates ISO)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fordring.dunning.v1 import dunning_pb2 as pb
from rich.console import Console
from rich.table import Table

from services.cli.views import DUNNING_STAGES, money
from services.cli.violations import FieldViolation

JURISDICTIONS = ("NO", "SE")
DEBTOR_KINDS = ("consumer", "business")
CURRENCIES = {"NO": "NOK", "SE": "SEK"}
ZONES = {"NO": ZoneInfo("Europe/Oslo"), "SE": ZoneInfo("Europe/Stockholm")}
STEPS = {
    "nudge": "nudge",
    "reminder": "reminder",
    "collection_notice": "collection notice",
    "collection_handoff": "hand-off to collection",
}
HOLDS = {
    "payment_in_review": "a payment in the review queue",
    "payment_unapplied": "a payment the ledger has not applied yet",
    "dispute": "disputed",
    "pause": "paused",
    "debit_in_flight": "an AvtaleGiro debit on its way",
    "bank_files_pending": "today's bank files are not in yet",
}
_STATE_STYLE = {"applied": "green", "proposed": "yellow", "rejected": "red"}
# How the dunning service names the rule a policy breaks, after the description: "… [rule.id: source]".
_RULE = re.compile(r"^(?P<message>.*) \[(?P<rule>[A-Za-z0-9_.\-]+): (?P<source>.*)\]$", re.DOTALL)


def step_name(step: str) -> str:
    return STEPS.get(step, step.replace("_", " "))


def stage_name(stage: int) -> str:
    return DUNNING_STAGES.get(stage, str(stage))


def local_time(value: str, jurisdiction: str = "NO") -> str:
    """An RFC 3339 instant as the creditor reads it: "2025-06-16 12:00 Europe/Oslo"."""
    if not value:
        return ""
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    zone = ZONES.get(jurisdiction, ZONES["NO"])
    return f"{at.astimezone(zone):%Y-%m-%d %H:%M} {zone.key}"


def _amount(minor: int, currency: str) -> str:
    return money(minor, currency) if minor else ""


# --- policies ------------------------------------------------------------------------------------------


def policy_entry_json(reply: pb.PolicyResponse, policy: Mapping[str, Any]) -> dict[str, Any]:
    """A stored policy with what the service says about it (default or which version, set by whom)."""
    return {
        "jurisdiction": policy.get("jurisdiction", ""),
        "debtor_kind": policy.get("debtor_kind", ""),
        "is_default": reply.is_default,
        "version": reply.version,
        "updated_at": reply.updated_at,
        "updated_by": reply.updated_by,
        "policy": dict(policy),
    }


def when_text(step: Mapping[str, Any]) -> str:
    """When a step goes, from its offset: "3 days after the due date", "when the previous step's
    deadline has passed"."""
    days = int(step.get("offset_days", 0))
    base = step.get("offset_from", "due_date")
    count = f"{abs(days)} day{'s' if abs(days) != 1 else ''}"
    if base == "previous_deadline":
        passed = "the previous step's deadline has passed"
        return f"when {passed}" if days == 0 else f"{count} after {passed}"
    if base == "previous_step":
        return "with the previous step" if days == 0 else f"{count} after the previous step"
    if days == 0:
        return "on the due date"
    return f"{count} {'after' if days > 0 else 'before'} the due date"


def fee_text(fee: object, currency: str) -> str:
    if fee == "legal_max":
        return "the most the law allows"
    return money(fee, currency) if isinstance(fee, int) and fee > 0 else ""


def policy_table(entry: Mapping[str, Any]) -> Table:
    policy: Mapping[str, Any] = entry["policy"]
    jurisdiction = str(policy.get("jurisdiction", ""))
    currency = CURRENCIES.get(jurisdiction, "")
    if entry["is_default"]:
        state = "the lawful default (not changed for this tenant)"
    else:
        by = f" by {entry['updated_by']}" if entry["updated_by"] else ""
        state = f"version {entry['version']}, saved {entry['updated_at'][:19].replace('T', ' ')}{by}"
    table = Table(
        title=f"{jurisdiction} {policy.get('debtor_kind', '')} policy: {state}",
        title_justify="left",
        caption=_policy_caption(policy),
        caption_justify="left",
    )
    for column in ("#", "Step", "When", "Channels", "Fee", "Deadline", "Interest", "Compensation"):
        table.add_column(column, justify="right" if column in ("#", "Fee") else "left")
    for index, step in enumerate(policy.get("steps", [])):
        interest = (
            "charged" if step.get("charge_interest") else ("shown" if step.get("show_interest") else "")
        )
        label = step.get("label", "")
        deadline = int(step.get("deadline_days", 0))
        table.add_row(
            str(index),
            step_name(str(step.get("kind", ""))) + (f" ({label})" if label else ""),
            when_text(step),
            ", ".join(step.get("channels", [])) + (" + payment link" if step.get("payment_link") else ""),
            fee_text(step.get("fee_minor", 0), currency),
            f"{deadline} days" if deadline else "",
            interest,
            "charged" if step.get("charge_compensation") else "",
        )
    return table


def _policy_caption(policy: Mapping[str, Any]) -> str:
    opens, closes = str(policy.get("window_opens", "")), str(policy.get("window_closes", ""))
    parts = [f"sent from {opens[:5]} to {closes[:5]} local time"]
    cutoff = policy.get("bank_files_cutoff")
    parts.append(f"not before {str(cutoff)[:5]} on business days" if cutoff else "no bank-files wait")
    if policy.get("require_daily_bank_files"):
        parts.append("waits for the day's bank file")
    if policy.get("reminder_fee_agreed"):
        parts.append("reminder fee agreed in the terms")
    if policy.get("collection_notice_waived"):
        parts.append("inkassovarsel waived by agreement")
    if policy.get("early_nudge_days"):
        parts.append(f"customers late before: nudged {policy['early_nudge_days']} days before the due date")
    return "; ".join(parts)


# --- a refused policy ----------------------------------------------------------------------------------


def refusal_lines(violations: Sequence[FieldViolation]) -> list[str]:
    """Each rule a policy breaks on two lines: where and what, then the rule and its source."""
    lines = []
    for violation in violations:
        found = _RULE.match(violation.description)
        if found is None:
            lines.append(f"  • {violation}")
            continue
        lines.append(
            f"  • {violation.field}: {found['message']}" if violation.field else f"  • {found['message']}"
        )
        lines.append(f"      {found['rule']} — {found['source']}")
    return lines


# --- held steps ----------------------------------------------------------------------------------------


def hold_json(hold: pb.Hold) -> dict[str, Any]:
    return {"kind": hold.kind, "reason": hold.reason, "reference": hold.reference, "until": hold.until}


def hold_text(hold: pb.Hold, jurisdiction: str = "NO") -> str:
    what = HOLDS.get(hold.kind, hold.kind.replace("_", " "))
    reason = f": {hold.reason}" if hold.reason and hold.reason != what else ""
    until = f" (until {local_time(hold.until, jurisdiction)})" if hold.until else ""
    return f"{what}{reason}{until}"


def held_json(held: pb.HeldStep) -> dict[str, Any]:
    return {
        "invoice_id": held.invoice_id,
        "invoice_number": held.invoice_number,
        "customer_id": held.customer_id,
        "step": held.step,
        "due_since": held.due_since,
        "balance_minor": held.balance_minor,
        "currency": held.currency,
        "holds": [hold_json(h) for h in held.holds],
    }


def held_table(held: Iterable[pb.HeldStep]) -> Table:
    table = Table(title="Steps due but held back", title_justify="left")
    for column in ("Invoice", "Step", "Due since", "Balance", "Held because"):
        table.add_column(column, justify="right" if column == "Balance" else "left")
    for item in held:
        table.add_row(
            item.invoice_number or item.invoice_id,
            step_name(item.step),
            local_time(item.due_since),
            money(item.balance_minor, item.currency),
            "\n".join(hold_text(h) for h in item.holds),
        )
    return table


# --- one invoice's case --------------------------------------------------------------------------------


def taken_json(step: pb.TakenStep) -> dict[str, Any]:
    return {
        "step": step.step,
        "action_id": step.action_id,
        "taken_on": step.taken_on,
        "deadline": step.deadline,
        "fee_minor": step.fee_minor,
        "interest_minor": step.interest_minor,
        "compensation_minor": step.compensation_minor,
        "state": step.state,
        "detail": step.detail,
        "channels": list(step.channels),
    }


def case_json(case: pb.Case) -> dict[str, Any]:
    return {
        "invoice_id": case.invoice_id,
        "invoice_number": case.invoice_number,
        "customer_id": case.customer_id,
        "status": case.status,
        "stage": case.stage,
        "stage_name": stage_name(case.stage),
        "jurisdiction": case.jurisdiction,
        "debtor_kind": case.debtor_kind,
        "due_date": case.due_date,
        "currency": case.currency,
        "balance_minor": case.balance_minor,
        "interest_to_date_minor": case.interest_to_date_minor,
        "steps": [taken_json(s) for s in case.steps],
        "outcome": case.outcome,
        "reason": case.reason,
        "next_step": case.next_step,
        "next_at": case.next_at,
        "holds": [hold_json(h) for h in case.holds],
        "skipped": list(case.skipped),
    }


def next_text(case: pb.Case) -> str:
    """What comes next for the case, in words."""
    reason = case.reason.replace("_", " ")
    if not case.next_step or case.outcome == "done":
        return f"nothing ({reason})" if reason else "nothing"
    step = step_name(case.next_step)
    if case.outcome == "waiting" and case.next_at:
        return f"{step} at {local_time(case.next_at, case.jurisdiction)}" + (f" ({reason})" if reason else "")
    if case.outcome == "held":
        return f"{step}, due but held back (below)"
    return f"{step}, due now"


def steps_table(case: pb.Case) -> Table:
    table = Table(title="Steps taken", title_justify="left")
    for column in (
        "On",
        "Step",
        "Channels",
        "Fee",
        "Interest",
        "Compensation",
        "Deadline",
        "State",
        "Detail",
    ):
        table.add_column(column, justify="right" if column in ("Fee", "Interest", "Compensation") else "left")
    for step in case.steps:
        style = _STATE_STYLE.get(step.state, "default")
        table.add_row(
            step.taken_on,
            step_name(step.step),
            ", ".join(step.channels),
            _amount(step.fee_minor, case.currency),
            _amount(step.interest_minor, case.currency),
            _amount(step.compensation_minor, case.currency),
            step.deadline,
            f"[{style}]{step.state}[/]",
            step.detail,
        )
    return table


def print_case(console: Console, case: pb.Case, customer: str = "", *, invoice: bool = True) -> None:
    """The case: stage, interest, next step, holds and the steps taken; with `invoice`, first the
    invoice it is about (`customer`: the ledger's number and name; the case knows only the id)."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    if invoice:
        head.add_row("Invoice", f"{case.invoice_number or case.invoice_id}  ({case.status})")
        head.add_row("Customer", customer or case.customer_id)
        head.add_row("Due", f"{case.due_date}  ({case.jurisdiction}, {case.debtor_kind})")
        head.add_row("Balance", money(case.balance_minor, case.currency))
    head.add_row("Stage", f"{case.stage} ({stage_name(case.stage)})")
    head.add_row("Interest to date", money(case.interest_to_date_minor, case.currency))
    head.add_row("Next", next_text(case))
    for hold in case.holds:
        head.add_row("Held", hold_text(hold, case.jurisdiction))
    if case.skipped:
        head.add_row("Skipped", "; ".join(case.skipped))
    console.print(head, highlight=False)
    if case.steps:
        console.print(steps_table(case))


# --- dry runs ------------------------------------------------------------------------------------------


def refusal_json(refusal: pb.RuleRefusal) -> dict[str, Any]:
    return {
        "rule_id": refusal.rule_id,
        "field": refusal.field,
        "message": refusal.message,
        "source": refusal.source,
    }


def simulation_json(reply: pb.SimulatePolicyResponse) -> dict[str, Any]:
    return {
        "period": reply.period,
        "invoices": reply.invoices,
        "currency": reply.currency,
        "steps": [
            {
                "step": s.step,
                "channel": s.channel,
                "count": s.count,
                "fees_minor": s.fees_minor,
                "interest_minor": s.interest_minor,
                "compensation_minor": s.compensation_minor,
            }
            for s in reply.steps
        ],
        "handed_off": reply.handed_off,
        "spared_by_payment": reply.spared_by_payment,
        "refusals": [refusal_json(r) for r in reply.refusals],
        "notes": [refusal_json(n) for n in reply.notes],
    }


def simulation_table(reply: pb.SimulatePolicyResponse) -> Table:
    currency = reply.currency
    totals = [
        sum(getattr(s, name) for s in reply.steps) for name in ("count", "fees_minor", "interest_minor")
    ]
    compensation = sum(s.compensation_minor for s in reply.steps)
    table = Table(
        title=f"Dry run: {reply.period} — {reply.invoices} invoices", title_justify="left", show_footer=True
    )
    table.add_column("Step", footer="total")
    table.add_column("Channel")
    table.add_column("Count", justify="right", footer=str(totals[0]))
    table.add_column("Fees", justify="right", footer=money(totals[1], currency))
    table.add_column("Interest", justify="right", footer=money(totals[2], currency))
    table.add_column("Compensation", justify="right", footer=money(compensation, currency))
    for s in reply.steps:
        table.add_row(
            step_name(s.step),
            s.channel or "—",
            str(s.count),
            money(s.fees_minor, currency),
            money(s.interest_minor, currency),
            money(s.compensation_minor, currency),
        )
    return table


def print_simulation(console: Console, reply: pb.SimulatePolicyResponse) -> None:
    if reply.steps:
        console.print(simulation_table(reply))
    else:
        console.print(
            f"Dry run: {reply.period} — {reply.invoices} invoices: no step would go out.", highlight=False
        )
    console.print(
        f"Handed to collection: {reply.handed_off} · spared by payment (paid before a step reached them): "
        f"{reply.spared_by_payment}",
        highlight=False,
    )
    if reply.refusals:
        console.print(
            f"[red]The law refuses this policy[/red] (`dunning policy set` would refuse it): "
            f"{len(reply.refusals)} rules broken",
            highlight=False,
        )
        for r in reply.refusals:
            where = f"{r.field}: " if r.field else ""
            console.print(
                f"  • {where}{r.message}\n      {r.rule_id} — {r.source}", highlight=False, markup=False
            )
    if reply.notes:
        console.print(
            "Notes: what the law would not have allowed on the real dates (those steps went without it):",
            highlight=False,
        )
        for n in reply.notes:
            console.print(f"  • {n.rule_id}: {n.message}", highlight=False, markup=False)


# --- payer history -------------------------------------------------------------------------------------


def payer_json(history: pb.PayerHistory, customer_number: str = "") -> dict[str, Any]:
    return {
        "customer_id": history.customer_id,
        "customer_number": customer_number,
        "invoices_settled": history.invoices_settled,
        "paid_on_time": history.paid_on_time,
        "on_time_rate": round(history.on_time_rate, 4),
        "average_days_late": round(history.average_days_late, 2),
        "reminders_needed": history.reminders_needed,
        "late_before": history.late_before,
        "by_channel": [
            {"channel": c.channel, "reminders": c.reminders, "paid_after": c.paid_after}
            for c in history.by_channel
        ],
    }


def print_payer(console: Console, history: pb.PayerHistory, customer: str) -> None:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("Customer", customer)
    head.add_row("Invoices settled", str(history.invoices_settled))
    rate = f" ({history.on_time_rate:.0%})" if history.invoices_settled else ""
    head.add_row("Paid on time", f"{history.paid_on_time}{rate}")
    head.add_row("Average days late", f"{history.average_days_late:.1f}")
    head.add_row("Reminders needed", str(history.reminders_needed))
    head.add_row(
        "Late before",
        "yes (the policy's early nudge and the AvtaleGiro/eFaktura offer apply)"
        if history.late_before
        else "no",
    )
    console.print(head, highlight=False)
    if history.by_channel:
        table = Table(title="Reminders by channel", title_justify="left")
        for column in ("Channel", "Reminders", "Paid after the last one"):
            table.add_column(column, justify="left" if column == "Channel" else "right")
        for c in history.by_channel:
            table.add_row(c.channel or "—", str(c.reminders), str(c.paid_after))
        console.print(table)
