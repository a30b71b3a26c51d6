"""The dashboards' figures from what the services answer. Pure: "today" is passed in."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from fordring.dispatcher.v1 import dispatcher_pb2 as dispatcher_pb
from fordring.ledger.v1 import ledger_pb2 as ledger_pb
from fordring.matcher.v1 import matcher_pb2 as matcher_pb

from services.portal.console.charts import Bar, share
from services.portal.console.view import money, status

CLOSED = frozenset(
    {
        ledger_pb.INVOICE_STATUS_PAID,
        ledger_pb.INVOICE_STATUS_OVERPAID,
        ledger_pb.INVOICE_STATUS_CREDITED,
        ledger_pb.INVOICE_STATUS_WRITTEN_OFF,
    }
)
# The first is a word (its key), the others say themselves.
BUCKETS = ("c.not_due", "1-30", "31-60", "61-90", "90+")
MANUAL = frozenset({"manual", "none", ""})


@dataclass(frozen=True)
class Late:
    customer_id: str
    name: str
    late: int
    invoices: int


@dataclass(frozen=True)
class Figures:
    invoices: int
    by_status: list[Bar]
    aging: list[Bar]
    dso_days: float | None
    paid_before_due: list[Bar]
    fallback: list[Bar]
    matched_by_method: list[Bar]
    automatic_rate: str
    reminders_by_stage: list[Bar]
    repeatedly_late: list[Late]
    currency: str


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def bucket(due: date | None, today: date) -> str:
    days = (today - due).days if due else 0
    if days <= 0:
        return BUCKETS[0]
    return (
        BUCKETS[1] if days <= 30 else BUCKETS[2] if days <= 60 else BUCKETS[3] if days <= 90 else BUCKETS[4]
    )


def was_late(invoice: ledger_pb.Invoice, today: date) -> bool:
    due = _day(invoice.due_date)
    if due is None:
        return False
    if invoice.dunning_stage > 0 or invoice.status == ledger_pb.INVOICE_STATUS_OVERDUE:
        return True
    paid = [d for a in invoice.allocations if not a.reversed_at and (d := _day(a.paid_on))]
    if invoice.status in CLOSED and paid:
        return max(paid) > due
    return invoice.status not in CLOSED and today > due


def figures(
    invoices: Sequence[ledger_pb.Invoice],
    stats: Sequence[dispatcher_pb.ChannelStats],
    payments: Sequence[matcher_pb.Payment],
    today: date,
    *,
    of: str = "of",
) -> Figures:
    """Labels are the words' keys where they are words (statuses `status.<name>`, stages `c.stage.<n>`)."""
    real = [i for i in invoices if i.kind != ledger_pb.INVOICE_KIND_CREDIT_NOTE]
    currency = Counter(i.currency for i in real).most_common(1)[0][0] if real else "NOK"
    statuses = Counter(status(i.status) for i in real)
    aging: dict[str, int] = dict.fromkeys(BUCKETS, 0)
    open_total = 0
    for i in real:
        if i.status not in CLOSED and i.balance.minor_units > 0 and i.currency == currency:
            aging[bucket(_day(i.due_date), today)] += i.balance.minor_units
            open_total += i.balance.minor_units
    since = today - timedelta(days=90)
    sales = sum(
        i.gross_total.minor_units
        for i in real
        if i.currency == currency and (d := _day(i.issue_date)) and d >= since
    )
    dso = round(open_total / sales * 90, 1) if sales else None

    delivered: Counter[str] = Counter()
    more_than_once: Counter[str] = Counter()
    for i in real:
        if i.HasField("delivery") and i.delivery.channel:
            channel = ledger_pb.Channel.Name(i.delivery.channel).removeprefix("CHANNEL_").lower()
            delivered[channel] += 1
            more_than_once[channel] += i.delivery.deliveries > 1

    credits = [p for p in payments if p.direction != "debit"]
    methods = Counter(p.method or "none" for p in credits if p.status in ("matched", "resolved"))
    automatic = sum(n for m, n in methods.items() if m not in MANUAL)
    stages = Counter(i.dunning_stage for i in real if i.dunning_stage > 0)

    late: dict[str, list[bool]] = defaultdict(list)
    names: dict[str, str] = {}
    for i in real:
        late[i.customer_id].append(was_late(i, today))
        names[i.customer_id] = i.customer_name
    repeatedly = sorted(
        (Late(c, names[c], sum(flags), len(flags)) for c, flags in late.items() if sum(flags) >= 2),
        key=lambda x: (-x.late, x.name),
    )[:10]

    return Figures(
        invoices=len(real),
        by_status=[Bar(f"status.{name}", n) for name, n in statuses.most_common()],
        aging=[Bar(b, aging[b], money(aging[b], currency)) for b in BUCKETS],
        dso_days=dso,
        paid_before_due=[
            Bar(
                s.channel,
                100 * s.share_paid_before_due,
                f"{round(100 * s.share_paid_before_due)} % {of} {s.paid}",
            )
            for s in stats
            if s.deliveries
        ],
        fallback=[
            Bar(c, 100 * more_than_once[c] / n, f"{share(more_than_once[c], n)} {of} {n}")
            for c, n in delivered.most_common()
        ],
        matched_by_method=[Bar(m, n) for m, n in methods.most_common()],
        automatic_rate=share(automatic, len(credits)),
        reminders_by_stage=[Bar(f"c.stage.{s}", stages[s]) for s in sorted(stages)],
        repeatedly_late=repeatedly,
        currency=currency,
    )
