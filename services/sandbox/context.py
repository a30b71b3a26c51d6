"""What every sandbox provider shares: where it keeps what it received, the faults an operator (or a
test) asked for, the idempotency keys it has seen, and the signed callbacks it sends back.

The sandbox stands in for the outside world in the embedded stack and the tests: each provider speaks
its real protocol (SMTP, the HTTP APIs in PROTOCOLS.md), dedupes on the idempotency key as the real
ones do, keeps every accepted item on disk (`<root>/<channel>/…`) and answers with receipts posted to
the dispatcher's webhook URL, signed with the provider's secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import aiohttp

from services.common.clock import Clock, SystemClock
from services.common.ids import new_id
from services.common.webhooks import SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)

# What the next sends on a channel do instead of succeeding:
#   fail      refuse the send itself (SMTP 550 / HTTP 4xx: permanent; the contact is bad)
#   error     a temporary error (SMTP 451 / HTTP 503): the sender retries
#   bounce    accept, then report a bounce / failed delivery by callback
#   reject    accept, then report a rejection (EHF access point, eFaktura, AvtaleGiro)
#   return    accept, then report the letter returned to sender (print)
#   delay     accept, and report delivery only after `seconds`
#   unopened  accept and deliver, but the customer never opens it
Outcome = Literal["fail", "error", "bounce", "reject", "return", "delay", "unopened"]
OUTCOMES: tuple[Outcome, ...] = ("fail", "error", "bounce", "reject", "return", "delay", "unopened")


@dataclass(frozen=True)
class Fault:
    outcome: Outcome
    seconds: float = 0.0


@dataclass
class Faults:
    """Per channel, a queue of outcomes for the next sends (POST /control/faults)."""

    _queues: dict[str, deque[Fault]] = field(default_factory=dict)

    def add(self, channel: str, fault: Fault, count: int) -> None:
        self._queues.setdefault(channel, deque()).extend([fault] * count)

    def take(self, channel: str) -> Fault | None:
        """The fault for this send, if one is queued (each fault is used once)."""
        queue = self._queues.get(channel)
        return queue.popleft() if queue else None

    def pending(self) -> dict[str, list[dict[str, Any]]]:
        return {
            c: [{"outcome": f.outcome, "seconds": f.seconds} for f in q] for c, q in self._queues.items() if q
        }

    def clear(self) -> None:
        self._queues.clear()


class Callbacks:
    """Signed webhooks to the dispatcher, retried with backoff until it answers 2xx (or gives a 4xx,
    which no retry will change)."""

    def __init__(self, base_url: str, secrets: Mapping[str, str]) -> None:
        self._base_url = base_url.rstrip("/")
        self._secrets = dict(secrets)
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.failed = 0

    def post(self, provider: str, payload: Mapping[str, Any], *, delay: float = 0.0) -> None:
        """Post `payload` to <dispatcher>/webhooks/<provider> after `delay` seconds (in the background)."""
        task = asyncio.create_task(self._post(provider, dict(payload), delay))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, provider: str, payload: dict[str, Any], delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        if not self._base_url:
            return
        body = json.dumps(payload, separators=(",", ":")).encode()
        url = f"{self._base_url}/webhooks/{provider}"
        wait = 0.5
        for _ in range(12):
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(body, self._secrets.get(provider, "")),
            }
            try:
                session = self._session or aiohttp.ClientSession()
                self._session = session
                async with session.post(
                    url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(10)
                ) as reply:
                    if reply.status < 300:
                        self.sent += 1
                        return
                    if 400 <= reply.status < 500:
                        log.warning("sandbox: %s refused a %s callback: %s", url, provider, reply.status)
                        self.failed += 1
                        return
            except (aiohttp.ClientError, TimeoutError, OSError):
                pass
            await asyncio.sleep(wait)
            wait = min(wait * 2, 10.0)
        self.failed += 1

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()


class Inbox:
    """What a channel received: one file per accepted item plus `records.jsonl`, an append-only log
    of every request (accepted, duplicate, refused), and the idempotency keys already taken."""

    def __init__(self, root: Path, channel: str) -> None:
        self.dir = root / channel
        self.dir.mkdir(parents=True, exist_ok=True)
        self._log = self.dir / "records.jsonl"
        self._keys: dict[str, dict[str, Any]] = {}
        if self._log.exists():
            for line in self._log.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if record.get("result") == "accepted" and record.get("key"):
                        self._keys[record["key"]] = record

    def seen(self, key: str) -> dict[str, Any] | None:
        """The record of the item accepted under this idempotency key, if any."""
        return self._keys.get(key)

    def record(self, key: str, result: str, **fields: Any) -> dict[str, Any]:
        entry = {
            "at": time.time(),
            "key": key,
            "result": result,
            "id": fields.pop("id", None) or new_id(),
            **fields,
        }
        with self._log.open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
        if result == "accepted" and key:
            self._keys[key] = entry
        return entry

    def keep(self, name: str, content: bytes) -> Path:
        """Store an accepted item atomically (written aside, then renamed)."""
        path = self.dir / name
        part = path.with_name(path.name + ".part")
        part.write_bytes(content)
        os.replace(part, path)
        return path

    def records(self) -> list[dict[str, Any]]:
        if not self._log.exists():
            return []
        return [json.loads(line) for line in self._log.read_text(encoding="utf-8").splitlines() if line]


# An invoice link: /i/<invoice>.<signature>, or /i/<invoice>.<expiry>.<signature> (services/common/links.py).
_LINK = re.compile(r"https?://[^\s<>\"']+/i/[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+){1,2}")


@dataclass
class SandboxContext:
    root: Path
    faults: Faults
    callbacks: Callbacks
    # How long after delivery the simulated customer follows the invoice link (seconds; 0: never).
    open_after: float = 2.0
    inboxes: dict[str, Inbox] = field(default_factory=dict)
    # POST /control/registry: per channel ("ehf", "efaktura"), id → reachable, over the default rule.
    registry: dict[str, dict[str, bool]] = field(default_factory=dict)
    opened: int = 0
    # The SMTP server's port once it listens (the e-mail provider sets it; 0 in settings picks a free one).
    smtp_port: int = 0
    # What receipts are dated by: the stack's sandbox clock when it runs one (make_app), else real time.
    clock: Clock = field(default_factory=SystemClock)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def now(self) -> datetime:
        """The time a receipt carries: the stack's time, so a delivery is never read before its send."""
        return self.clock.now()

    def inbox(self, channel: str) -> Inbox:
        if channel not in self.inboxes:
            self.inboxes[channel] = Inbox(self.root, channel)
        return self.inboxes[channel]

    def reachable(self, channel: str, ident: str, default: bool) -> bool:
        """The registry's answer for `ident`: an override from /control/registry, else the default."""
        return self.registry.get(channel, {}).get(ident, default)

    def read_later(self, text: str) -> None:
        """The simulated customer opens the message: after `open_after` seconds it follows the first
        invoice link (`…/i/<token>`) in `text`, as a person tapping it would (a GET)."""
        match = _LINK.search(text)
        if match is None or self.open_after <= 0:
            return
        task = asyncio.create_task(self._follow(match.group(0), self.open_after))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _follow(self, url: str, delay: float) -> None:
        await asyncio.sleep(delay)
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
            async with (
                aiohttp.ClientSession() as session,
                session.get(url, timeout=aiohttp.ClientTimeout(10), allow_redirects=False) as reply,
            ):
                await reply.read()
                self.opened += 1

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.callbacks.close()
