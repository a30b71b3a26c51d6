"""Sends parsed invoices to the ledger: bounded concurrency, retries, a progress bar, and a report."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field

import grpc
from fordring.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.cli import rpc_errors
from services.cli.client import Connection, RetryPolicy, ledger_stub, with_retries
from services.cli.invoice_format import ParsedLine
from services.cli.violations import FieldViolation

# Long enough to outlast a service restart plus the database reaping the dead process's open
# transactions (60 s on MongoDB and SecantusDB alike).
IMPORT_RETRIES = RetryPolicy(give_up_after=180.0)
# Codes that say every other line would fail the same way: stop sending instead of failing each line.
_FATAL = frozenset(
    {
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)


@dataclass(frozen=True)
class LineFailure:
    line_no: int
    external_id: str
    reason: str
    violations: tuple[FieldViolation, ...] = ()


@dataclass
class ImportReport:
    total: int
    created: int = 0
    already_there: int = 0
    failures: list[LineFailure] = field(default_factory=list)
    aborted: str = ""

    @property
    def not_sent(self) -> int:
        return self.total - self.created - self.already_there - len(self.failures)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.aborted


async def send_invoices(
    stub: ledger_pb2_grpc.LedgerServiceAsyncStub,
    parsed: Sequence[ParsedLine],
    metadata: tuple[tuple[str, str], ...],
    *,
    concurrency: int,
    retries: RetryPolicy = IMPORT_RETRIES,
    on_done: Callable[[], None] = lambda: None,
) -> ImportReport:
    report = ImportReport(total=len(parsed))
    for line in parsed:
        if line.request is None and line.draft is None:
            report.failures.append(LineFailure(line.line_no, line.external_id, "bad line", line.violations))
            on_done()
    pending: Iterator[ParsedLine] = (line for line in parsed if line.request or line.draft)

    async def check_bad_line(line: ParsedLine) -> None:
        """A line with problems is not issued; the ledger checks what could be read of it, so every
        problem of the line is reported at once (the file's own first, then the ledger's)."""
        assert line.draft is not None
        draft = ledger_pb2.IssueInvoiceRequest()
        draft.CopyFrom(line.draft)
        draft.validate_only = True
        found = list(line.violations)
        try:
            await with_retries(issue(draft), retries)
        except grpc.aio.AioRpcError as error:
            failure = rpc_errors.describe(error)
            if error.code() in _FATAL:
                report.aborted = report.aborted or "\n".join(failure.lines())
                return
            reported = {v.field for v in found}
            found += [v for v in failure.violations if v.field not in reported]
        report.failures.append(LineFailure(line.line_no, line.external_id, "bad line", tuple(found)))

    def issue(
        request: ledger_pb2.IssueInvoiceRequest,
    ) -> Callable[[], Awaitable[ledger_pb2.IssueInvoiceResponse]]:
        async def call() -> ledger_pb2.IssueInvoiceResponse:
            return await stub.IssueInvoice(request, metadata=metadata, timeout=retries.call_timeout)

        return call

    async def worker() -> None:
        # One shared iterator: the event loop runs one worker at a time, so each line is taken once.
        for line in pending:
            if report.aborted:
                return
            if line.request is None:
                await check_bad_line(line)
                on_done()
                continue
            try:
                response = await with_retries(issue(line.request), retries)
            except grpc.aio.AioRpcError as error:
                failure = rpc_errors.describe(error)
                if error.code() in _FATAL:
                    report.aborted = report.aborted or "\n".join(failure.lines())
                    return
                report.failures.append(
                    LineFailure(
                        line.line_no,
                        line.external_id,
                        failure.code + ": " + failure.message,
                        failure.violations + tuple(FieldViolation("", p) for p in failure.preconditions),
                    )
                )
            else:
                if response.created:
                    report.created += 1
                else:
                    report.already_there += 1
            on_done()

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    report.failures.sort(key=lambda failure: failure.line_no)
    return report


async def run_import(
    connection: Connection, parsed: Sequence[ParsedLine], console: Console, *, concurrency: int
) -> ImportReport:
    progress = Progress(
        TextColumn("[bold]importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    with progress:
        task = progress.add_task("import", total=len(parsed))
        async with ledger_stub(connection) as stub:
            return await send_invoices(
                stub,
                parsed,
                connection.metadata,
                concurrency=concurrency,
                on_done=lambda: progress.advance(task),
            )


def print_report(report: ImportReport, console: Console, source: str) -> None:
    for failure in report.failures:
        where = f"line {failure.line_no}"
        if failure.external_id:
            where += f" ({failure.external_id})"
        console.print(f"[red]{where}[/red]: {failure.reason}", highlight=False)
        for violation in failure.violations:
            console.print(f"    • {violation}", highlight=False)
    if report.aborted:
        console.print(f"[red]import stopped[/red]: {report.aborted}", highlight=False)
        console.print("Nothing is sent twice: run the same import again once the problem is fixed.")
    parts = [
        f"[green]{report.created} created[/green]",
        f"{report.already_there} already there",
        f"[red]{len(report.failures)} failed[/red]" if report.failures else "0 failed",
    ]
    if report.not_sent:
        parts.append(f"[yellow]{report.not_sent} not sent[/yellow]")
    console.print(f"[bold]{source}[/bold]: {' · '.join(parts)} (of {report.total})", highlight=False)
