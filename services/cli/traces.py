"""`fordring invoices trace NUMBER`: the invoice's story as its traces tell it, one tree per trace
(service, span, kind, duration), with the links between traces (a payment's or a reminder's link
back to the invoice's origin). The traces come from the trace backend's query API
(services/cli/trace_client.py)."""

from __future__ import annotations

from collections.abc import Iterable

import click
from fordring.ledger.v1 import ledger_pb2
from rich.console import Console
from rich.markup import escape

from services.cli.client import QUICK, ledger_stub
from services.cli.context import CliContext
from services.cli.trace_client import APIS, Span, TraceBackend, TraceBackendError, by_trace
from services.cli.views import write_json
from services.common import attributes as attr


def tree_lines(spans: Iterable[Span], invoice_id: str) -> list[str]:
    """One block per trace: its spans as a tree; `↪` marks a link to another trace's span, `●` a span
    about the invoice."""
    every = list(spans)
    known = {(s.trace_id, s.span_id): s for s in every}
    lines: list[str] = []
    for trace_id, members in by_trace(every).items():
        ids = {s.span_id for s in members}
        children: dict[str, list[Span]] = {}
        roots = []
        for span in members:
            if span.parent_id and span.parent_id in ids:
                children.setdefault(span.parent_id, []).append(span)
            else:
                roots.append(span)
        lines.append(f"trace {trace_id} ({', '.join(sorted({s.service for s in members}))})")
        stack = [(root, 1) for root in reversed(roots)]
        while stack:
            span, depth = stack.pop()
            about = "●" if span.attributes.get(attr.INVOICE_ID) == invoice_id else " "
            ms = span.duration_ns / 1e6
            lines.append(f"{'  ' * depth}{about} {span.service}: {span.name} [{span.kind}] {ms:.1f} ms")
            for linked_trace, span_id in span.links:
                target = known.get((linked_trace, span_id))
                what = f"{target.service}: {target.name}" if target else f"span {span_id}"
                lines.append(f"{'  ' * depth}    ↪ linked to trace {linked_trace[:12]}… {what}")
            stack.extend((child, depth + 1) for child in reversed(children.get(span.span_id, [])))
    return lines


@click.command("trace")
@click.argument("number")
@click.option(
    "--traces-url",
    envvar="FORDRING_TRACES_URL",
    help="The trace backend's query API: Jaeger's (http://localhost:16686 in the compose stack) or "
    "Tempo's (with --traces-api tempo). Environment: FORDRING_TRACES_URL.",
)
@click.option(
    "--traces-api",
    type=click.Choice(APIS),
    default="jaeger",
    show_default=True,
    envvar="FORDRING_TRACES_API",
    help="Which query API --traces-url speaks.",
)
@click.option("--json", "as_json", is_flag=True, help="Every span as JSON (trace, parent, service, links).")
@click.pass_obj
def trace(ctx: CliContext, number: str, traces_url: str | None, traces_api: str, as_json: bool) -> None:
    """The traces of invoice NUMBER, as a tree per trace with the links between them."""
    if not traces_url:
        raise click.ClickException(
            "no trace backend: pass --traces-url (or set FORDRING_TRACES_URL) with Jaeger's query API "
            "(http://localhost:16686 in the compose stack), or Tempo's with --traces-api tempo"
        )
    connection = ctx.connection()

    async def invoice_id() -> str:
        async with ledger_stub(connection) as stub:
            reply = await stub.GetInvoice(
                ledger_pb2.GetInvoiceRequest(invoice_number=number),
                metadata=connection.metadata,
                timeout=QUICK.call_timeout,
            )
            return str(reply.invoice.id)

    wanted = ctx.run(invoice_id())
    backend = TraceBackend(traces_url, "tempo" if traces_api == "tempo" else "jaeger")
    try:
        spans = backend.invoice_spans(wanted)
    except TraceBackendError as exc:
        raise click.ClickException(f"the trace backend did not answer: {exc}") from None
    if as_json:
        write_json(
            [
                {
                    "trace_id": s.trace_id,
                    "span_id": s.span_id,
                    "parent_id": s.parent_id,
                    "service": s.service,
                    "name": s.name,
                    "kind": s.kind,
                    "start_ns": s.start_ns,
                    "duration_ns": s.duration_ns,
                    "attributes": dict(s.attributes),
                    "links": [{"trace_id": t, "span_id": i} for t, i in s.links],
                }
                for s in spans
            ]
        )
        return
    console: Console = ctx.console
    if not spans:
        console.print(f"No traces of invoice {escape(number)} ({wanted}) in {escape(traces_url)}.")
        ctx.exit(1)
    console.print(f"[bold]Invoice {escape(number)}[/bold] ({wanted}): {len(by_trace(spans))} trace(s)")
    for line in tree_lines(spans, wanted):
        console.print(escape(line), highlight=False)
