"""`fordring sandbox clock`: show and move forward the time of a local `fordring up` stack.

Every service of that stack runs on a SandboxClock (services/common/clock.py): the real time plus an
offset kept in the stack's MongoDB (services/common/sandbox_clock.py). `advance` adds to the offset in
one update, then waits until every service says on /metrics that it uses the new one, so what comes
next (a ledger read, a test's assertion) happens in the new time.
"""

from __future__ import annotations

import asyncio
import http.client
import re
import time
from collections.abc import Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn
from urllib.parse import urlsplit

import click
from pymongo.errors import PyMongoError

from services.cli.context import CliContext
from services.cli.views import write_json
from services.common import sandbox_clock as store
from services.common.clock import OSLO, isoformat_utc
from services.common.mongo import create_mongo_client

# One advance moves at most this far (a whole dunning cycle is a few months).
MAX_DAYS = 3650
# `advance` waits this long by default for every service to take the new time.
DEFAULT_WAIT_SECONDS = 30.0
OFFSET_METRIC = "fordring_sandbox_clock_offset_seconds"
_OFFSET_SAMPLE = re.compile(rf"^{OFFSET_METRIC}(?:\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
# The offset is a float that went through Prometheus text: equal within a millisecond is equal.
_SAME = 1e-3


@click.group()
def sandbox() -> None:
    """The local stack's sandbox (a `fordring up` stack only)."""


@sandbox.group()
def clock() -> None:
    """The stack's one clock: every service's "now" is the real time plus an offset that only grows."""


@clock.command("show")
@click.option("--json", "as_json", is_flag=True, help="Real time, sandbox time, offset and each service's.")
@click.pass_obj
def show(ctx: CliContext, as_json: bool) -> None:
    """The real time, the stack's time and how far apart they are; what each service uses."""
    record = _sandbox_stack(ctx)
    offset = _run(ctx, _read_offset(str(record["mongo"])), record)
    reported = service_offsets(_service_urls(record))
    real = datetime.now(UTC)
    sandbox_now = real + timedelta(seconds=offset)
    if as_json:
        write_json(
            {
                "real_time": isoformat_utc(real),
                "sandbox_time": isoformat_utc(sandbox_now),
                "sandbox_today": sandbox_now.astimezone(OSLO).date().isoformat(),
                "offset_seconds": offset,
                "services": reported,
            }
        )
        return
    ctx.console.print(f"Real time     {_local(real)}", highlight=False)
    ctx.console.print(f"Sandbox time  {_local(sandbox_now)}", highlight=False)
    ctx.console.print(f"Offset        {describe_offset(offset)}", highlight=False)
    behind = {name: seen for name, seen in reported.items() if seen is None or abs(seen - offset) > _SAME}
    for name, seen in behind.items():
        told = "does not report it" if seen is None else f"uses {describe_offset(seen)}"
        ctx.console.print(f"[yellow]{name} {told}[/yellow]", highlight=False)


@clock.command("advance")
@click.option("--days", type=click.IntRange(0, MAX_DAYS), default=0, help="Days forward.")
@click.option("--hours", type=click.IntRange(0, 24 * MAX_DAYS), default=0, help="Hours forward, besides.")
@click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(0, 600),
    default=DEFAULT_WAIT_SECONDS,
    show_default=True,
    help="Seconds to wait for every service to take the new time.",
)
@click.pass_obj
def advance(ctx: CliContext, days: int, hours: int, wait_seconds: float) -> None:
    """Move the stack's time forward for every service at once: invoices fall due, fallbacks fire,
    reminders go out. Time never goes back."""
    by = timedelta(days=days, hours=hours)
    if by <= timedelta(0):
        raise click.UsageError("give how far: --days N (and/or --hours H), more than zero")
    if by > timedelta(days=MAX_DAYS):
        raise click.UsageError(f"one advance moves at most {MAX_DAYS} days")
    record = _sandbox_stack(ctx)
    offset = _run(ctx, _advance(str(record["mongo"]), by), record)
    urls = _service_urls(record)
    with ctx.console.status(f"Moved {describe_offset(by.total_seconds())}; waiting for {', '.join(urls)}"):
        late = wait_for_offset(urls, offset, wait_seconds)
    if late:
        ctx.errors.print(
            f"[red]error[/red]: the stack's clock moved, but after {wait_seconds:.0f} s "
            + "; ".join(f"{name} {told}" for name, told in late.items())
            + " (a service that is down takes the new time when it starts; see `fordring status`)",
            highlight=False,
        )
        ctx.exit(1)
    sandbox_now = datetime.now(UTC) + timedelta(seconds=offset)
    ctx.console.print(f"Sandbox time  {_local(sandbox_now)}", highlight=False)
    ctx.console.print(f"Offset        {describe_offset(offset)} ahead of the real time", highlight=False)


def _sandbox_stack(ctx: CliContext) -> Mapping[str, Any]:
    """The local stack's record, if that stack runs on a sandbox clock; else a refusal (exit 2)."""
    if ctx.target:
        _refuse(
            ctx,
            "--target (FORDRING_TARGET) names a deployment; the sandbox clock belongs to a local "
            "`fordring up` stack only",
        )
    record = ctx.home.read_stack()
    if record is None:
        _refuse(ctx, f"no stack runs from {ctx.home.root} (no stack.json); `fordring up` starts one")
    if record.get("sandbox_clock") is not True or not record.get("mongo"):
        _refuse(
            ctx,
            f"the stack in {ctx.home.root} has no sandbox clock (its stack.json does not say "
            '"sandbox_clock": true); only a stack `fordring up` started has one',
        )
    return record


def _refuse(ctx: CliContext, why: str) -> NoReturn:
    ctx.errors.print(f"[red]refused[/red]: {why}", highlight=False)
    ctx.exit(2)


def _run(ctx: CliContext, work: Coroutine[Any, Any, float], record: Mapping[str, Any]) -> float:
    try:
        return asyncio.run(work)
    except store.OffsetLimitError as exc:
        _refuse(ctx, str(exc))
    except PyMongoError as exc:
        raise click.ClickException(
            f"cannot reach the stack's MongoDB at {record['mongo']} ({type(exc).__name__}); "
            "is the stack up? (`fordring status`)"
        ) from None


async def _read_offset(uri: str) -> float:
    client = create_mongo_client(uri, app_name="fordring-cli")
    try:
        return await store.read_offset(client[store.DATABASE])
    finally:
        await client.close()


async def _advance(uri: str, by: timedelta) -> float:
    client = create_mongo_client(uri, app_name="fordring-cli")
    try:
        return await store.advance(client[store.DATABASE], by)
    finally:
        await client.close()


def _service_urls(record: Mapping[str, Any]) -> dict[str, str]:
    return {str(name): str(url) for name, url in dict(record.get("http", {})).items()}


def wait_for_offset(urls: Mapping[str, str], offset: float, seconds: float) -> dict[str, str]:
    """Wait until every service reports `offset` (or more); what the late ones said when time ran out."""
    deadline = time.monotonic() + seconds
    while True:
        reported = service_offsets(urls)
        late = {name: seen for name, seen in reported.items() if seen is None or seen < offset - _SAME}
        if not late or time.monotonic() >= deadline:
            return {
                name: "does not report the sandbox clock" if seen is None else f"still uses {seen:.0f} s"
                for name, seen in late.items()
            }
        time.sleep(0.2)


def service_offsets(urls: Mapping[str, str]) -> dict[str, float | None]:
    """The offset each service reports on /metrics (None: no answer, or no sandbox clock)."""
    return {name: _reported_offset(url) for name, url in urls.items()}


def _reported_offset(url: str) -> float | None:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=1.0)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()
    # One sample per runtime in the process (one, as the stack runs it): the one furthest behind counts.
    found = _OFFSET_SAMPLE.findall(text) if response.status == 200 else []
    return min(float(value) for value in found) if found else None


def describe_offset(seconds: float) -> str:
    """ "40 days", "40 days 3 h", "2 h 5 min", "0 s"."""
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{days} day{'s' if days != 1 else ''}" if days else "",
        f"{hours} h" if hours else "",
        f"{minutes} min" if minutes else "",
        f"{secs} s" if secs and not days else "",
    ]
    return " ".join(part for part in parts if part) or "0 s"


def _local(at: datetime) -> str:
    """What a Norwegian creditor's "now" is: Oslo time, with the UTC instant beside it."""
    return f"{at.astimezone(OSLO):%Y-%m-%d %H:%M} Europe/Oslo ({isoformat_utc(at)})"
