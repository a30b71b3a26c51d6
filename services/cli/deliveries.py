"""`fordring deliveries`: the dispatcher's client — every attempt of an invoice's deliveries, the
deviations that need a person, resends for customer service, channel statistics and the rules."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import click
from fordring.common.v1 import common_pb2
from fordring.dispatcher.v1 import dispatcher_pb2 as pb
from rich.console import Console
from rich.table import Table

from services.cli.client import QUICK, Connection, all_pages, dispatcher_stub, with_retries
from services.cli.context import CliContext
from services.cli.views import to_dict, write_json

CHANNELS = ("email", "sms", "ehf", "efaktura", "vipps", "print", "avtalegiro")


async def list_deliveries(connection: Connection, number: str) -> list[pb.Delivery]:
    async with dispatcher_stub(connection) as stub:
        reply = await with_retries(
            lambda: stub.ListDeliveries(
                pb.ListDeliveriesRequest(invoice_number=number),
                metadata=connection.metadata,
                timeout=QUICK.call_timeout,
            ),
            QUICK,
        )
    return list(reply.deliveries)


async def list_deviations(connection: Connection, limit: int) -> list[pb.Deviation]:
    async with dispatcher_stub(connection) as stub:

        async def fetch(page: common_pb2.PageRequest) -> tuple[list[pb.Deviation], str]:
            reply = await stub.ListDeviations(
                pb.ListDeviationsRequest(page=page), metadata=connection.metadata, timeout=QUICK.call_timeout
            )
            return list(reply.deviations), reply.page.next_page_token

        return await all_pages(fetch, limit)


async def resend(connection: Connection, number: str, channel: str, request_id: str) -> pb.Delivery:
    async with dispatcher_stub(connection) as stub:
        reply = await with_retries(
            lambda: stub.Resend(
                pb.ResendRequest(invoice_number=number, channel=channel, request_id=request_id),
                metadata=connection.metadata,
                timeout=QUICK.call_timeout,
            ),
            QUICK,
        )
    return reply.delivery


async def channel_stats(connection: Connection, from_date: str, to_date: str) -> list[pb.ChannelStats]:
    async with dispatcher_stub(connection) as stub:
        reply = await with_retries(
            lambda: stub.GetChannelStats(
                pb.GetChannelStatsRequest(from_date=from_date, to_date=to_date),
                metadata=connection.metadata,
                timeout=QUICK.call_timeout,
            ),
            QUICK,
        )
    return list(reply.channels)


def _time(value: str) -> str:
    return value[:19].replace("T", " ") if value else ""


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def deliveries_table(deliveries: list[pb.Delivery], title: str = "Deliveries") -> Table:
    table = Table(title=title, title_justify="left")
    for column in (
        "document",
        "channel",
        "route",
        "status",
        "sent",
        "delivered",
        "opened",
        "attempts",
        "why",
    ):
        table.add_column(column)
    for d in deliveries:
        why = d.reason or (d.attempts[-1].detail if d.attempts and d.attempts[-1].result == "retry" else "")
        if d.rule:
            why = f"{d.rule}; {why}" if why else d.rule
        table.add_row(
            d.document_kind.replace("_", " "),
            d.channel,
            d.route,
            d.status,
            _time(d.sent_at),
            _time(d.delivered_at),
            _time(d.opened_at),
            str(len(d.attempts)),
            why,
        )
    return table


def deviations_table(deviations: list[pb.Deviation]) -> Table:
    table = Table(title=f"{len(deviations)} deviations", title_justify="left")
    for column in ("when", "invoice", "document", "channel", "kind", "reason", "action"):
        table.add_column(column)
    for d in deviations:
        table.add_row(
            _time(d.created_at),
            d.invoice_number,
            d.document_kind.replace("_", " "),
            d.channel,
            d.kind,
            _short(d.reason),
            _short(d.action),
        )
    return table


def stats_table(stats: list[pb.ChannelStats]) -> Table:
    table = Table(title="Channel effectiveness", title_justify="left")
    for column in (
        "channel",
        "deliveries",
        "delivered",
        "opened",
        "failed",
        "paid before due",
        "days to pay",
    ):
        table.add_column(column, justify="left" if column == "channel" else "right")
    for s in stats:
        table.add_row(
            s.channel,
            str(s.deliveries),
            f"{s.share_delivered:.0%}",
            f"{s.share_opened:.0%}",
            str(s.failed),
            f"{s.share_paid_before_due:.0%}",
            f"{s.days_to_payment:.1f}" if s.paid else "",
        )
    return table


def print_deliveries(console: Console, deliveries: list[pb.Delivery], reason: str = "") -> None:
    if reason:
        console.print(f"[dim]{reason}[/dim]")
    elif deliveries:
        console.print(deliveries_table(deliveries))
    else:
        console.print("[dim]no deliveries yet (the dispatcher sends moments after rendering)[/dim]")


@click.group()
def deliveries() -> None:
    """How invoices reached customers: attempts, deviations, resends, channel statistics, rules."""


@deliveries.command("list")
@click.option("--invoice", "number", required=True, help="The invoice number.")
@click.option("--json", "as_json", is_flag=True, help="Every delivery with its attempts as JSON.")
@click.pass_obj
def list_command(ctx: CliContext, number: str, as_json: bool) -> None:
    """Every delivery of an invoice's documents: channel, status, reason, timestamps, attempts."""
    found = ctx.run(list_deliveries(ctx.connection(), number))
    if as_json:
        write_json([to_dict(d) for d in found])
    else:
        print_deliveries(ctx.console, found)


@deliveries.command("deviations")
@click.option("--limit", type=click.IntRange(1, 100_000), default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="A JSON array of deviations.")
@click.pass_obj
def deviations_command(ctx: CliContext, limit: int, as_json: bool) -> None:
    """Deliveries that need a person (failed, stuck, returned, no usable channel), newest first."""
    found = ctx.run(list_deviations(ctx.connection(), limit))
    if as_json:
        write_json([to_dict(d) for d in found])
    elif found:
        ctx.console.print(deviations_table(found))
    else:
        ctx.console.print("No deviations.")


@deliveries.command("resend")
@click.argument("number")
@click.option("--channel", type=click.Choice(CHANNELS), required=True)
@click.option(
    "--request-id",
    default="",
    help="Makes a retried command send once (default: a new id, i.e. a new send each time).",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def resend_command(ctx: CliContext, number: str, channel: str, request_id: str, as_json: bool) -> None:
    """Send invoice NUMBER's newest document again on CHANNEL (customer service)."""
    delivery = ctx.run(resend(ctx.connection(), number, channel, request_id or str(uuid.uuid4())))
    if as_json:
        write_json(to_dict(delivery))
    else:
        ctx.console.print(
            f"Queued: {delivery.document_kind.replace('_', ' ')} {number} by {channel} ({delivery.id})."
        )


@deliveries.command("stats")
@click.option("--from", "from_date", default="", help="First day (ISO date) of deliveries counted.")
@click.option("--to", "to_date", default="", help="Last day (ISO date).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def stats_command(ctx: CliContext, from_date: str, to_date: str, as_json: bool) -> None:
    """Per channel: share delivered, opened, paid before due, days from delivery to payment."""
    found = ctx.run(channel_stats(ctx.connection(), from_date, to_date))
    if as_json:
        write_json([to_dict(s) for s in found])
    else:
        ctx.console.print(stats_table(found))


@deliveries.group("rules")
def rules() -> None:
    """The tenant's delivery rules (channel order and fallbacks), as JSON."""


@rules.command("show")
@click.pass_obj
def rules_show(ctx: CliContext) -> None:
    """Print the rules in force (the defaults until the tenant sets its own)."""
    connection = ctx.connection()

    async def fetch() -> pb.RulesResponse:
        async with dispatcher_stub(connection) as stub:
            return await with_retries(
                lambda: stub.GetRules(
                    pb.GetRulesRequest(), metadata=connection.metadata, timeout=QUICK.call_timeout
                ),
                QUICK,
            )

    reply = ctx.run(fetch())
    click.echo(reply.rules_json)


@rules.command("set")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def rules_set(ctx: CliContext, file: Path) -> None:
    """Replace the rules with FILE (JSON, the shape `rules show` prints); checked whole."""
    text = file.read_text(encoding="utf-8")
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{file}: not JSON ({exc})") from None
    connection = ctx.connection()

    async def store() -> pb.RulesResponse:
        async with dispatcher_stub(connection) as stub:
            return await stub.SetRules(
                pb.SetRulesRequest(rules_json=text), metadata=connection.metadata, timeout=QUICK.call_timeout
            )

    ctx.run(store())
    ctx.console.print(f"Rules from {file} are in force.")
