"""Operator commands for a service's outbox (every service adds them to its own admin command):

    python -m services.<service> outbox status
    python -m services.<service> outbox unpark [EVENT_ID ...]
    python -m services.<service> outbox replay --since 2026-11-30T10:00:00Z [--until ...] [--topic ...]

`replay` queues the events a service made in a time window to be published again by its running
relay, in their original order (consumers dedupe by event id): for a Kafka cluster restored from an
older backup, a topic deleted by mistake, or a consumer that must read a window again. Only events
within the retention window (FORDRING_OUTBOX_RETENTION_HOURS) are still there.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from services.common.mongo import Database
from services.common.outbox import outbox_status, replay, unpark
from services.common.settings import CommonSettings


def add_outbox_commands(areas: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    outbox = areas.add_parser("outbox", help="events waiting to be published, parked ones, replay")
    commands = outbox.add_subparsers(dest="command")
    commands.add_parser("status", help="what waits, and every parked event with its reason")
    retry = commands.add_parser("unpark", help="give parked events (all, or these) new attempts")
    retry.add_argument("event_ids", nargs="*")
    again = commands.add_parser("replay", help="publish the events of a time window again")
    again.add_argument("--since", required=True, type=_instant, help="ISO time, e.g. 2026-11-30T10:00:00Z")
    again.add_argument("--until", type=_instant, help="ISO time (default: now)")
    again.add_argument("--topic", action="append", default=[], help="only this topic (repeatable)")


def _instant(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO time such as 2026-11-30T10:00:00Z"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


async def run_outbox_command(args: argparse.Namespace, db: Database) -> int:
    if args.command == "status":
        status = await outbox_status(db)
        oldest = status.oldest_unsent_at.isoformat(timespec="seconds") if status.oldest_unsent_at else "-"
        print(f"unsent: {status.unsent} (oldest since {oldest}); parked: {len(status.parked)}")
        for p in status.parked:
            print(
                f"  {p.id}  {p.type} on {p.topic}, key {p.key}: {p.attempts} attempts, "
                f"{p.waiting_behind} later events of its key wait\n      {p.reason}"
            )
        return 0
    if args.command == "unpark":
        count = await unpark(db, args.event_ids)
        print(f"{count} parked events get new attempts; the relay publishes them shortly")
        return 0 if count or not args.event_ids else 1
    if args.command == "replay":
        until = args.until or datetime.now(UTC)
        count = await replay(db, since=args.since, until=until, now=datetime.now(UTC), topics=args.topic)
        window = f"{args.since.isoformat()} to {until.isoformat()}"
        print(f"{count} events from {window} queued to be published again")
        return 0
    print("outbox: give status, unpark or replay")
    return 2


def outbox_main(argv: list[str], settings: CommonSettings) -> int:
    """`python -m services.<service> outbox …` for a service with no other admin commands."""
    import asyncio

    from services.common.mongo import create_mongo_client

    root = argparse.ArgumentParser(
        prog=f"python -m services.{settings.service_name}",
        description=f"Operate the {settings.service_name}.",
    )
    areas = root.add_subparsers(dest="area", required=True)
    add_outbox_commands(areas)
    args = root.parse_args(argv)

    async def run() -> int:
        client = create_mongo_client(settings.mongo_uri, app_name=f"fordring-{settings.service_name}-admin")
        try:
            return await run_outbox_command(args, client[settings.mongo_database])
        finally:
            await client.close()

    return asyncio.run(run())
