"""`fordring dunning`: the dunning service's client — the tenant's policies (shown, saved against the
law, dry-run), pauses for disputes and customer service, the steps held back, one invoice's case, a
customer's payer history and the day's export of claims handed to collection.

Invoices and customers are named as people know them (invoice and customer numbers); the ledger says
which ids they are."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path

import click
import grpc
from fordring.common.v1 import common_pb2
from fordring.dunning.v1 import dunning_pb2 as pb
from fordring.ledger.v1 import ledger_pb2

from services.cli import rpc_errors
from services.cli.client import QUICK, Connection, RetryPolicy, all_pages, dunning_stub, with_retries
from services.cli.context import CliContext
from services.cli.dunning_views import (
    DEBTOR_KINDS,
    JURISDICTIONS,
    case_json,
    held_json,
    held_table,
    payer_json,
    policy_entry_json,
    policy_table,
    print_case,
    print_payer,
    print_simulation,
    refusal_lines,
    simulation_json,
)
from services.cli.ledger_reads import customer_by_number_or_id, invoice_by_number_or_id
from services.cli.views import write_json

# `fordring invoices show` asks dunning for the case on the side: briefly, and never fails for it.
CASE_ON_THE_SIDE = RetryPolicy(give_up_after=3.0, call_timeout=5.0)
# A refused policy exits with this code (a gRPC error otherwise exits with 1).
REFUSED = 2


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password database
        return ""


async def get_policies(connection: Connection, jurisdiction: str, kind: str) -> list[pb.PolicyResponse]:
    """One policy when both are given; else all four, narrowed to those given."""
    async with dunning_stub(connection) as stub:
        if jurisdiction and kind:
            one = await with_retries(
                lambda: stub.GetPolicy(
                    pb.GetPolicyRequest(jurisdiction=jurisdiction, debtor_kind=kind),
                    metadata=connection.metadata,
                    timeout=QUICK.call_timeout,
                ),
                QUICK,
            )
            return [one]
        every = await with_retries(
            lambda: stub.ListPolicies(
                pb.ListPoliciesRequest(), metadata=connection.metadata, timeout=QUICK.call_timeout
            ),
            QUICK,
        )
    found = []
    for reply in every.policies:
        policy = json.loads(reply.policy_json)
        if jurisdiction and policy.get("jurisdiction") != jurisdiction:
            continue
        if kind and policy.get("debtor_kind") != kind:
            continue
        found.append(reply)
    return found


async def set_policy(
    connection: Connection, text: str, expected_version: int, actor: str
) -> pb.PolicyResponse:
    async with dunning_stub(connection) as stub:
        # Not retried: with an expected version, a retry of a call that did save would be refused.
        reply: pb.PolicyResponse = await stub.SetPolicy(
            pb.SetPolicyRequest(policy_json=text, expected_version=expected_version, actor=actor),
            metadata=connection.metadata,
            timeout=QUICK.call_timeout,
        )
    return reply


async def simulate(connection: Connection, request: pb.SimulatePolicyRequest) -> pb.SimulatePolicyResponse:
    async with dunning_stub(connection) as stub:
        # A dry run stores nothing: safe to repeat. It may replay many invoices: a longer deadline.
        reply: pb.SimulatePolicyResponse = await with_retries(
            lambda: stub.SimulatePolicy(request, metadata=connection.metadata, timeout=120.0), QUICK
        )
    return reply


async def get_case(connection: Connection, invoice_id: str, retries: RetryPolicy = QUICK) -> pb.Case:
    async with dunning_stub(connection) as stub:
        case: pb.Case = await with_retries(
            lambda: stub.GetCase(
                pb.GetCaseRequest(invoice_id=invoice_id),
                metadata=connection.metadata,
                timeout=retries.call_timeout,
            ),
            retries,
        )
    return case


async def case_or_none(connection: Connection, invoice_id: str) -> pb.Case | None:
    """The invoice's dunning case, or None when there is none to show: no dunning service where the
    connection points, or one that does not know the invoice (yet)."""
    try:
        return await get_case(connection, invoice_id, CASE_ON_THE_SIDE)
    except grpc.aio.AioRpcError:
        return None


async def list_held(connection: Connection, limit: int) -> list[pb.HeldStep]:
    async with dunning_stub(connection) as stub:

        async def fetch(page: common_pb2.PageRequest) -> tuple[list[pb.HeldStep], str]:
            reply = await stub.ListHeld(
                pb.ListHeldRequest(page=page), metadata=connection.metadata, timeout=QUICK.call_timeout
            )
            return list(reply.held), reply.page.next_page_token

        return await all_pages(fetch, limit)


async def pause(connection: Connection, request: pb.PauseRequest) -> pb.PauseResponse:
    async with dunning_stub(connection) as stub:
        # Safe to repeat (an open pause with the same reason is found, not doubled), but a repeat would
        # report "already paused": taken once.
        reply: pb.PauseResponse = await stub.Pause(
            request, metadata=connection.metadata, timeout=QUICK.call_timeout
        )
    return reply


async def resume(connection: Connection, request: pb.ResumeRequest) -> pb.ResumeResponse:
    async with dunning_stub(connection) as stub:
        reply: pb.ResumeResponse = await with_retries(
            lambda: stub.Resume(request, metadata=connection.metadata, timeout=QUICK.call_timeout), QUICK
        )
    return reply


async def payer_history(connection: Connection, customer_id: str) -> pb.PayerHistory:
    async with dunning_stub(connection) as stub:
        reply: pb.PayerHistory = await with_retries(
            lambda: stub.GetPayerHistory(
                pb.GetPayerHistoryRequest(customer_id=customer_id),
                metadata=connection.metadata,
                timeout=QUICK.call_timeout,
            ),
            QUICK,
        )
    return reply


async def collection_export(connection: Connection, day: str) -> pb.CollectionExport:
    async with dunning_stub(connection) as stub:
        reply: pb.CollectionExport = await with_retries(
            lambda: stub.GetCollectionExport(
                pb.GetCollectionExportRequest(day=day), metadata=connection.metadata, timeout=60.0
            ),
            QUICK,
        )
    return reply


async def _invoice_and_case(connection: Connection, reference: str) -> tuple[ledger_pb2.Invoice, pb.Case]:
    invoice = await invoice_by_number_or_id(connection, reference)
    return invoice, await get_case(connection, invoice.id)


@click.group()
def dunning() -> None:
    """Reminders, fees, interest and collection by Norwegian and Swedish law: policies, pauses, the
    steps held back, one invoice's case, how a customer pays, the collection export."""


# --- policies --------------------------------------------------------------------------------------------


@dunning.group("policy")
def policy() -> None:
    """The tenant's policies, one per jurisdiction (NO, SE) and debtor kind (consumer, business)."""


@policy.command("show")
@click.option("--jurisdiction", type=click.Choice(JURISDICTIONS, case_sensitive=False), default=None)
@click.option("--kind", "debtor_kind", type=click.Choice(DEBTOR_KINDS, case_sensitive=False), default=None)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="With --jurisdiction and --kind: the policy itself, the file `policy set` takes. Otherwise an "
    "array of {jurisdiction, debtor_kind, is_default, version, updated_at, updated_by, policy}.",
)
@click.pass_obj
def policy_show(ctx: CliContext, jurisdiction: str | None, debtor_kind: str | None, as_json: bool) -> None:
    """The policies in force: each step, when it goes, on which channels, its fee, deadline, interest
    and compensation (the lawful default until the tenant saves its own)."""
    wanted_jurisdiction, wanted_kind = (jurisdiction or "").upper(), (debtor_kind or "").lower()
    found = ctx.run(get_policies(ctx.connection(), wanted_jurisdiction, wanted_kind))
    entries = [policy_entry_json(reply, json.loads(reply.policy_json)) for reply in found]
    if as_json:
        if wanted_jurisdiction and wanted_kind:
            write_json(entries[0]["policy"])
        else:
            write_json(entries)
        return
    for entry in entries:
        ctx.console.print(policy_table(entry))


def _read_policy(file: Path) -> str:
    text = file.read_text(encoding="utf-8")
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{file}: not JSON ({exc})") from None
    return text


@policy.command("set")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--expected-version",
    type=click.IntRange(0),
    default=0,
    help="Refuse to save if the policy is no longer at this version (someone saved it meanwhile).",
)
@click.option("--actor", default=_actor, show_default="your user name", help="Who saves it (kept with it).")
@click.pass_obj
def policy_set(ctx: CliContext, file: Path, expected_version: int, actor: str) -> None:
    """Save the policy in FILE (JSON, the shape `policy show --json` prints), for the jurisdiction and
    debtor kind it names. It is checked against the law first: a policy that breaks a rule is refused
    whole, with every rule it breaks and its source (exit code 2)."""
    text = _read_policy(file)
    connection = ctx.connection()

    async def attempt() -> pb.PolicyResponse | grpc.aio.AioRpcError:
        try:
            return await set_policy(connection, text, expected_version, actor)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.INVALID_ARGUMENT:
                raise
            return error

    reply = ctx.run(attempt())
    if isinstance(reply, grpc.aio.AioRpcError):
        failure = rpc_errors.describe(reply)
        count = len(failure.violations)
        ctx.errors.print(
            f"[red]refused[/red]: the policy in {file} breaks {count} rule{'s' if count != 1 else ''}; "
            "nothing was saved",
            highlight=False,
        )
        for line in refusal_lines(failure.violations) or [f"  • {failure.message}"]:
            ctx.errors.print(line, highlight=False, markup=False)
        ctx.exit(REFUSED)
    saved = json.loads(reply.policy_json)
    ctx.console.print(
        f"The {saved.get('jurisdiction')} {saved.get('debtor_kind')} policy from {file} is in force "
        f"(version {reply.version}). Open cases of that kind are decided again under it now.",
        highlight=False,
    )


@policy.command("simulate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--from", "due_from", metavar="DATE", default="", help="Invoices due from this day (a past period)."
)
@click.option("--to", "due_to", metavar="DATE", default="", help="… to this day.")
@click.option("--until", metavar="DATE", default="", help="Replay them to this day.  [default: today]")
@click.option(
    "--days",
    type=click.IntRange(1, 3650),
    default=None,
    help="The open invoices, this many days forward from today.  [default: 90]",
)
@click.option("--json", "as_json", is_flag=True, help="The counts and amounts, rules and notes as JSON.")
@click.pass_obj
def policy_simulate(
    ctx: CliContext, file: Path, due_from: str, due_to: str, until: str, days: int | None, as_json: bool
) -> None:
    """Dry run: what the policy in FILE would have done to the invoices due in a past period (--from,
    --to), or will do to the open ones (--days). Nothing is sent or saved. Per step and channel: how
    many, fees, interest and compensation; how many go to collection, how many a payment spared; the
    rules the policy breaks and what the law would not have allowed on the real dates."""
    request = simulation_request(_read_policy(file), due_from, due_to, until, days)
    reply = ctx.run(simulate(ctx.connection(), request))
    if as_json:
        write_json(simulation_json(reply))
    else:
        print_simulation(ctx.console, reply)


def simulation_request(
    text: str, due_from: str, due_to: str, until: str, days: int | None
) -> pb.SimulatePolicyRequest:
    """The dry run asked for: a past period (--from/--to, --until) or days forward, not both."""
    if days is not None and (due_from or due_to or until):
        raise click.UsageError("--days looks forward from today; --from/--to/--until replay a past period")
    if until and not (due_from or due_to):
        raise click.UsageError("--until ends a replay of a past period: give --from and/or --to")
    return pb.SimulatePolicyRequest(
        policy_json=text, due_from=due_from, due_to=due_to, until=until, days=days or 0
    )


# --- pauses and held steps ----------------------------------------------------------------------------


@dunning.command("pause")
@click.argument("invoice")
@click.option("--reason", required=True, help="Why (shown with the held step, kept with the pause).")
@click.option("--dispute", is_flag=True, help="The customer disputes the claim (else a plain pause).")
@click.option(
    "--until", default="", metavar="DATE|TIME", help="Resume by itself then (YYYY-MM-DD or RFC 3339)."
)
@click.option("--actor", default=_actor, show_default="your user name", help="Who paused it.")
@click.pass_obj
def pause_command(ctx: CliContext, invoice: str, reason: str, dispute: bool, until: str, actor: str) -> None:
    """Hold the dunning of INVOICE (its number, or its id): no further step goes out until it is
    resumed (or --until)."""
    if not reason.strip():
        raise click.BadParameter("say why", param_hint="--reason")
    connection = ctx.connection()

    async def run() -> tuple[ledger_pb2.Invoice, pb.PauseResponse]:
        found = await invoice_by_number_or_id(connection, invoice)
        request = pb.PauseRequest(
            invoice_id=found.id,
            reason=reason.strip(),
            kind="dispute" if dispute else "pause",
            until=until,
            actor=actor,
        )
        return found, await pause(connection, request)

    found, reply = ctx.run(run())
    what = "disputed" if dispute else "paused"
    when = f" until {until}" if until else " until resumed"
    if reply.already_paused:
        ctx.console.print(
            f"Invoice {found.invoice_number} was already {what} for this reason (pause {reply.pause_id}).",
            highlight=False,
        )
    else:
        ctx.console.print(
            f"Dunning of invoice {found.invoice_number} is {what}{when} (pause {reply.pause_id}).",
            highlight=False,
        )


@dunning.command("resume")
@click.argument("invoice")
@click.option("--pause", "pause_id", default="", help="Only this pause (its id); default: every open pause.")
@click.option("--reason", default="", help="Why (kept with the pause).")
@click.option("--actor", default=_actor, show_default="your user name", help="Who resumed it.")
@click.pass_obj
def resume_command(ctx: CliContext, invoice: str, pause_id: str, reason: str, actor: str) -> None:
    """End the pauses of INVOICE (its number, or its id): its dunning goes on from where it stood."""
    connection = ctx.connection()

    async def run() -> tuple[ledger_pb2.Invoice, pb.ResumeResponse]:
        found = await invoice_by_number_or_id(connection, invoice)
        request = pb.ResumeRequest(invoice_id=found.id, pause_id=pause_id, reason=reason, actor=actor)
        return found, await resume(connection, request)

    found, reply = ctx.run(run())
    if reply.resumed:
        ctx.console.print(
            f"Resumed {reply.resumed} pause{'s' if reply.resumed != 1 else ''} of invoice "
            f"{found.invoice_number}: its dunning goes on.",
            highlight=False,
        )
    else:
        ctx.console.print(f"Invoice {found.invoice_number} had no open pause.", highlight=False)


@dunning.command("held")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=10_000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="A JSON array of the held steps, each with its holds.")
@click.pass_obj
def held_command(ctx: CliContext, limit: int, as_json: bool) -> None:
    """Steps that are due but held back (a payment in review or not yet applied, a dispute, a pause, a
    debit on its way, today's bank files not in yet), oldest first, each with why."""
    found = ctx.run(list_held(ctx.connection(), limit))
    if as_json:
        write_json([held_json(h) for h in found])
    elif found:
        ctx.console.print(held_table(found))
        ctx.console.print(f"{len(found)} step{'s' if len(found) != 1 else ''} held back.", highlight=False)
    else:
        ctx.console.print("No step is held back.")


# --- reads ---------------------------------------------------------------------------------------------


@dunning.command("case")
@click.argument("invoice")
@click.option("--json", "as_json", is_flag=True, help="The case as JSON (amounts in minor units).")
@click.pass_obj
def case_command(ctx: CliContext, invoice: str, as_json: bool) -> None:
    """One invoice's dunning (its number, or its id): stage, the steps taken with their fees, interest,
    deadlines and state, the next step and when, what holds it back, the interest to date."""
    found, case = ctx.run(_invoice_and_case(ctx.connection(), invoice))
    if as_json:
        write_json(case_json(case))
    else:
        print_case(ctx.console, case, f"{found.customer_number} {found.customer_name}")


@dunning.command("payer")
@click.argument("customer")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def payer_command(ctx: CliContext, customer: str, as_json: bool) -> None:
    """How CUSTOMER (their number, or id) pays: invoices settled, on time, days late, reminders needed
    and after which channel they paid."""
    connection = ctx.connection()

    async def run() -> tuple[ledger_pb2.Customer, pb.PayerHistory]:
        found = await customer_by_number_or_id(connection, customer)
        return found, await payer_history(connection, found.id)

    found, history = ctx.run(run())
    if as_json:
        write_json(payer_json(history, found.number))
    else:
        print_payer(ctx.console, history, f"{found.number} {found.name}")


@dunning.command("export")
@click.option("--day", default="", metavar="DATE", help="The day of the hand-offs.  [default: today]")
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, writable=True),
    help="Write here (`-`: standard output).  [default: its file name]",
)
@click.pass_obj
def export_command(ctx: CliContext, day: str, out: str | None) -> None:
    """The file for the collection agency of the claims handed to collection on a day (JSON lines,
    one claim a line)."""
    export = ctx.run(collection_export(ctx.connection(), day))
    if out == "-":
        sys.stdout.buffer.write(export.content)
        return
    if not export.claims:
        ctx.console.print(f"No claims were handed to collection on {export.day}.", highlight=False)
        return
    path = Path(out or export.filename)
    path.write_bytes(export.content)
    ctx.console.print(
        f"{path}: {export.claims} claim{'s' if export.claims != 1 else ''} handed to collection on "
        f"{export.day} ({len(export.content):,} bytes)",
        highlight=False,
    )
