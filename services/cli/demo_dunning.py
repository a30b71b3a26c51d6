"""The demo's customers who did not pay are dunned: the stack's sandbox clock moves forward in steps,
each to midday in Oslo on the day the dunning service says the next step is due (inside the sending
window, after the bank files' cut-off): the nudges (three days after the due date), the reminders with
their fee (fourteen days after, on a business day), the inkassovarsel once the reminders' deadline has
passed. One invoice is disputed before its reminder and stays held back. Each move waits for the
dunning cases to show the steps applied by the ledger, not for a fixed time.

Only on a local stack with a sandbox clock (`fordring up`): elsewhere the step says so and is skipped.
The clock only moves forward: a second run finds the steps taken and moves no further than needed."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
from fordring.dunning.v1 import dunning_pb2 as pb
from fordring.ledger.v1 import ledger_pb2
from rich.console import Console
from rich.table import Table

from services.cli.client import QUICK, Connection, dunning_stub, with_retries
from services.cli.dunning import list_held, pause
from services.cli.dunning_views import ZONES, held_table, local_time, step_name
from services.cli.home import Home
from services.cli.sandbox_clock import describe_offset, wait_for_offset
from services.cli.views import money
from services.common import sandbox_clock
from services.common.mongo import create_mongo_client

# The demo's stages, in the order the clock reaches them (the hand-off, 14 days after the
# inkassovarsel, is left for the user: `fordring sandbox clock advance`).
STAGES = ("nudge", "reminder", "collection_notice")
# How long one stage may take to be applied by the ledger before the demo goes on without it.
STAGE_WAIT_SECONDS = 60.0
# How long the services may take to follow the clock.
CLOCK_WAIT_SECONDS = 30.0
MIDDAY = 12
DISPUTE = "The customer disputes the delivery: the goods never arrived"
# Closed without payment: nothing to dun.
_CLOSED = frozenset({ledger_pb2.INVOICE_STATUS_CREDITED, ledger_pb2.INVOICE_STATUS_WRITTEN_OFF})
_CONCURRENCY = 16


@dataclass(frozen=True)
class StackClock:
    """The local stack's sandbox clock: where its offset is kept and the services that follow it."""

    mongo_uri: str
    service_urls: Mapping[str, str]

    @classmethod
    def of(cls, home: Home | None) -> StackClock | None:
        record = home.read_stack() if home is not None else None
        if not record or record.get("sandbox_clock") is not True or not record.get("mongo"):
            return None
        urls = {str(name): str(url) for name, url in dict(record.get("http", {})).items()}
        return cls(str(record["mongo"]), urls)

    async def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=await self._offset())

    async def move_to(self, at: datetime) -> timedelta:
        """Every service of the stack at `at` (or where it is, if that is later); how far it moved."""
        by = at - await self.now()
        if by <= timedelta(0):
            return timedelta(0)
        client = create_mongo_client(self.mongo_uri, app_name="fordring-demo")
        try:
            offset = await sandbox_clock.advance(client[sandbox_clock.DATABASE], by)
        finally:
            await client.close()
        await asyncio.to_thread(wait_for_offset, self.service_urls, offset, CLOCK_WAIT_SECONDS)
        return by

    async def _offset(self) -> float:
        client = create_mongo_client(self.mongo_uri, app_name="fordring-demo")
        try:
            return await sandbox_clock.read_offset(client[sandbox_clock.DATABASE])
        finally:
            await client.close()


def unpaid(invoices: Sequence[ledger_pb2.Invoice]) -> list[ledger_pb2.Invoice]:
    """The invoices the customers still owe something on (the ones dunning is about)."""
    return [
        i
        for i in invoices
        if i.kind == ledger_pb2.INVOICE_KIND_INVOICE and i.status not in _CLOSED and i.balance.minor_units > 0
    ]


def midday_from(at: datetime, jurisdiction: str = "NO") -> datetime:
    """`at`, or midday of its local day if that is later: inside the sending window, well after the
    bank files' cut-off."""
    zone = ZONES.get(jurisdiction, ZONES["NO"])
    local = at.astimezone(zone)
    noon = local.replace(hour=MIDDAY, minute=0, second=0, microsecond=0)
    return max(local, noon).astimezone(UTC)


def stage_target(cases: Sequence[pb.Case], step: str, now: datetime) -> datetime | None:
    """When to move the clock for `step`: the latest moment one of the cases waits for it, at midday
    (None: no case waits for it)."""
    times = [
        midday_from(
            _instant(case.next_at) if case.outcome == "waiting" and case.next_at else now,
            case.jurisdiction or "NO",
        )
        for case in cases
        if case.next_step == step and case.outcome in ("waiting", "due")
    ]
    return max(times) if times else None


def settled(case: pb.Case) -> bool:
    """Nothing is on its way for the case: no step due and not yet proposed, none the ledger has not
    answered."""
    return case.outcome != "due" and all(s.state != "proposed" for s in case.steps)


def applied_steps(cases: Sequence[pb.Case]) -> Counter[str]:
    return Counter(s.step for c in cases for s in c.steps if s.state == "applied")


def went_out(before: Counter[str], after: Counter[str], held: int) -> str:
    """What one move of the clock did: "11 nudges, 7 reminders; 3 held back"."""
    parts = [
        f"{n} {step_name(kind)}{'s' if n != 1 else ''}"
        for kind in (*STAGES, "collection_handoff")
        if (n := after[kind] - before[kind]) > 0
    ]
    text = ", ".join(parts) or "no step"
    return text + (f"; {held} held back" if held else "")


def held_text(held: Sequence[pb.HeldStep], disputed: str) -> str:
    """Why the held steps wait, in one line."""
    kinds = Counter(hold.kind for h in held for hold in h.holds)
    reasons = []
    if kinds["dispute"]:
        reasons.append(f"{kinds['dispute']} by a dispute" + (f" (invoice {disputed})" if disputed else ""))
    if kinds["payment_in_review"]:
        reasons.append(f"{kinds['payment_in_review']} by payments waiting in the matcher's review queue")
    others = sum(n for kind, n in kinds.items() if kind not in ("dispute", "payment_in_review"))
    if others:
        reasons.append(f"{others} for other reasons")
    return f"{len(held)} step{'s' if len(held) != 1 else ''} held back: " + ", ".join(reasons) + "."


def stage_summary(cases: Sequence[pb.Case]) -> Table:
    """Steps applied, by kind: how many, and what they charged."""
    count: Counter[str] = Counter()
    fees: Counter[str] = Counter()
    interest: Counter[str] = Counter()
    compensation: Counter[str] = Counter()
    currency = next((c.currency for c in cases if c.currency), "NOK")
    for case in cases:
        for step in case.steps:
            if step.state != "applied":
                continue
            count[step.step] += 1
            fees[step.step] += step.fee_minor
            interest[step.step] += step.interest_minor
            compensation[step.step] += step.compensation_minor
    table = Table(title="Reminders by stage", title_justify="left", show_footer=True)
    table.add_column("Step", footer="total")
    table.add_column("Invoices", justify="right", footer=str(sum(count.values())))
    table.add_column("Fees", justify="right", footer=money(sum(fees.values()), currency))
    table.add_column("Interest charged", justify="right", footer=money(sum(interest.values()), currency))
    table.add_column("Compensation", justify="right", footer=money(sum(compensation.values()), currency))
    for kind in (*STAGES, "collection_handoff"):
        if count[kind]:
            table.add_row(
                step_name(kind),
                str(count[kind]),
                money(fees[kind], currency),
                money(interest[kind], currency),
                money(compensation[kind], currency),
            )
    return table


async def dun(
    connection: Connection,
    console: Console,
    invoices: Sequence[ledger_pb2.Invoice],
    *,
    home: Home | None,
    prefix: str = "",
) -> bool:
    """Move the sandbox clock through the dunning of the unpaid invoices and show what happened; False
    when it could not (no sandbox clock, no dunning service)."""
    owed = unpaid(invoices)
    clock = StackClock.of(home)
    if not owed:
        return True
    if clock is None:
        console.print(
            "[dim]Dunning: skipped (the demo moves a local stack's sandbox clock; this stack has none).[/dim]"
        )
        return False
    console.print(
        f"[bold]Dunning[/bold]: {len(owed)} of the invoices are still unpaid. The stack's sandbox clock "
        "moves forward to each step, at midday in Oslo (steps go out from 08 to 20, after the 09:00 "
        "bank files):",
        highlight=False,
    )
    ids = [i.id for i in owed]
    try:
        disputed = await _through_the_stages(connection, console, clock, ids)
        cases = await _cases(connection, ids)
        held = await list_held(connection, 1000)
    except grpc.aio.AioRpcError as error:
        console.print(
            f"[yellow]The dunning service did not answer ({error.code().name}: {error.details()}).[/yellow]",
            highlight=False,
        )
        return False
    console.print(stage_summary(cases))
    stages = Counter(c.stage for c in cases)
    console.print(
        f"Unpaid: {len(cases)}; reminded {stages[1]}, with an inkassovarsel {stages[2]}, handed to "
        f"collection {stages[3]}, not reminded yet {stages[0]} (the ledger's dunning stage).",
        highlight=False,
    )
    if held:
        console.print(held_table(held))
        console.print(held_text(held, disputed), highlight=False)
    for command in ("dunning held", "dunning case NUMBER", "dunning policy show", "sandbox clock show"):
        console.print(f"  {prefix}fordring {command}", highlight=False)
    return True


async def _through_the_stages(
    connection: Connection, console: Console, clock: StackClock, ids: list[str]
) -> str:
    """Each stage in turn; the number of the invoice disputed before its reminder ("": none)."""
    disputed = ""
    cases = await _settle(connection, ids)
    for step in STAGES:
        if step == "reminder" and not disputed:
            disputed = await _dispute_one(connection, cases)
        at = stage_target(cases, step, await clock.now())
        if at is None:
            continue
        before = applied_steps(cases)
        moved = await clock.move_to(at)
        started = time.monotonic()
        cases = await _settle(connection, ids)
        # Real seconds pass between the moves: shown to the minute.
        went = f"+{describe_offset(round(moved.total_seconds() / 60) * 60)}" if moved else "already there"
        held = sum(1 for c in cases if c.outcome == "held")
        console.print(
            f"  {local_time(at.isoformat())} ({went}): {went_out(before, applied_steps(cases), held)} "
            f"[dim](the ledger applied them in {time.monotonic() - started:.1f} s)[/dim]",
            highlight=False,
        )
    return disputed


async def _dispute_one(connection: Connection, cases: Sequence[pb.Case]) -> str:
    """Pause the dunning of one invoice waiting for its reminder, as customer service does for a
    dispute: its reminder is held back."""
    waiting = sorted(
        (c for c in cases if c.next_step == "reminder" and c.outcome == "waiting"),
        key=lambda c: c.invoice_number,
    )
    if not waiting:
        return ""
    case = waiting[0]
    await pause(
        connection,
        pb.PauseRequest(invoice_id=case.invoice_id, reason=DISPUTE, kind="dispute", actor="demo"),
    )
    return case.invoice_number


async def _settle(connection: Connection, ids: list[str]) -> list[pb.Case]:
    """The cases once nothing is on its way for any of them (or after STAGE_WAIT_SECONDS): every step
    due at the clock's time proposed and applied, steps that follow at once included."""
    deadline = time.monotonic() + STAGE_WAIT_SECONDS
    while True:
        cases = await _cases(connection, ids)
        if all(settled(c) for c in cases) or time.monotonic() > deadline:
            return cases
        await asyncio.sleep(0.5)


async def _cases(connection: Connection, ids: Sequence[str]) -> list[pb.Case]:
    """The dunning cases of these invoices (those the service knows)."""
    limit = asyncio.Semaphore(_CONCURRENCY)
    async with dunning_stub(connection) as stub:

        async def one(invoice_id: str) -> pb.Case | None:
            async with limit:
                try:
                    found: pb.Case = await with_retries(
                        lambda: stub.GetCase(
                            pb.GetCaseRequest(invoice_id=invoice_id),
                            metadata=connection.metadata,
                            timeout=QUICK.call_timeout,
                        ),
                        QUICK,
                    )
                except grpc.aio.AioRpcError as error:
                    if error.code() == grpc.StatusCode.NOT_FOUND:
                        return None
                    raise
                return found

        found = await asyncio.gather(*(one(i) for i in ids))
    return [case for case in found if case is not None]


def _instant(value: str) -> datetime:
    at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
