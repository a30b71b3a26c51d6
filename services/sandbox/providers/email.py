"""The sandbox's mail server: SMTP as a real mail provider speaks it (aiosmtpd's protocol on the
app's own event loop), keeping each accepted message as `<root>/email/<delivery_id>.eml`.

Each transaction takes the channel's next fault at its first RCPT: `fail` refuses the recipient
(550), `error` asks to try later (451), `bounce` (and `reject`/`return`) accepts and then posts a
`bounced` receipt, `delay` accepts and posts `delivered` after `seconds`, `unopened` accepts and the
simulated customer never opens it. A message whose Message-ID was accepted before is answered 250
with the first one's id and recorded `duplicate`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from typing import Any
from weakref import WeakKeyDictionary

from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session

from services.common.clock import isoformat_utc
from services.common.ids import new_id
from services.sandbox.context import Fault, SandboxContext
from services.sandbox.settings import SandboxSettings

log = logging.getLogger(__name__)

HOSTNAME = "sandbox.fordring.invalid"
# Our Message-IDs are `<delivery_id@fordring.invalid>` (the adapter's default domain).
MESSAGE_ID_DOMAIN = "fordring.invalid"
DELIVERY_HEADER = "X-Fordring-Delivery"
REFUSED = "550 5.1.1 mailbox unavailable"
LATER = "451 4.3.0 try again later"
BOUNCED = "550 5.1.1 mailbox unavailable (bounced after acceptance)"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_PARSER = BytesParser(policy=default)


def _delivery_id(message: EmailMessage, message_id: str) -> str:
    local, _, domain = message_id.rpartition("@")
    if local and domain.lower() == MESSAGE_ID_DOMAIN:
        return local
    return str(message.get(DELIVERY_HEADER, "")).strip()


def _plain_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    if not isinstance(part, EmailMessage):
        return ""
    content = part.get_content()
    return content if isinstance(content, str) else ""


class Mailbox:
    """aiosmtpd's handler: the provider's decisions at RCPT and DATA."""

    def __init__(self, ctx: SandboxContext) -> None:
        self._ctx = ctx
        # The fault each transaction took at its first RCPT (an envelope lives for one transaction).
        self._faults: WeakKeyDictionary[Envelope, Fault | None] = WeakKeyDictionary()

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        del server, session, rcpt_options
        if envelope not in self._faults:
            self._faults[envelope] = self._ctx.faults.take("email")
        fault = self._faults[envelope]
        if fault is not None and fault.outcome in ("fail", "error"):
            reply = REFUSED if fault.outcome == "fail" else LATER
            self._ctx.inbox("email").record("", "refused", reply=reply, outcome=fault.outcome)
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        del server, session
        fault = self._faults.pop(envelope, None)
        raw = envelope.original_content or b""
        message = _PARSER.parsebytes(raw)
        assert isinstance(message, EmailMessage)
        message_id = str(message.get("Message-ID", "")).strip().strip("<>")
        delivery_id = _delivery_id(message, message_id)
        inbox = self._ctx.inbox("email")
        first = inbox.seen(message_id) if message_id else None
        if first is not None:
            inbox.record(message_id, "duplicate", id=first["id"], delivery_id=delivery_id)
            return f"250 2.0.0 Ok: queued as {first['id']}"
        provider_id = new_id()
        name = delivery_id if _SAFE_NAME.fullmatch(delivery_id) else provider_id
        inbox.keep(f"{name}.eml", raw)
        inbox.record(
            message_id,
            "accepted",
            id=provider_id,
            delivery_id=delivery_id,
            file=f"{name}.eml",
            recipients=len(envelope.rcpt_tos),
            size=len(raw),
            outcome=fault.outcome if fault else None,
        )
        self._after_acceptance(fault, message, delivery_id, message_id)
        return f"250 2.0.0 Ok: queued as {provider_id}"

    def _after_acceptance(
        self, fault: Fault | None, message: EmailMessage, delivery_id: str, message_id: str
    ) -> None:
        outcome = fault.outcome if fault else None
        delay = fault.seconds if fault else 0.0
        if outcome in ("bounce", "reject", "return"):
            self._receipt(delivery_id, message_id, "bounced", BOUNCED, delay)
            return
        if outcome == "delay":
            self._receipt(delivery_id, message_id, "delivered", "", delay)
        if outcome != "unopened":
            self._ctx.read_later(_plain_text(message))

    def _receipt(self, delivery_id: str, message_id: str, status: str, reason: str, delay: float) -> None:
        payload: dict[str, Any] = {
            "event_id": new_id(),
            "delivery_id": delivery_id,
            "message_id": message_id,
            "status": status,
            "reason": reason,
            "at": isoformat_utc(self._ctx.now() + timedelta(seconds=delay)),
        }
        self._ctx.callbacks.post("email", payload, delay=delay)


class _Connection(SMTP):
    """aiosmtpd's protocol, keeping a set of the open connections so a shutdown can close them."""

    def __init__(self, handler: Mailbox, connections: set[_Connection], **options: Any) -> None:
        super().__init__(handler, **options)
        self._connections = connections

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._connections.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self._connections.discard(self)
        super().connection_lost(error)


def setup(app: web.Application, ctx: SandboxContext, settings: SandboxSettings) -> None:
    mailbox = Mailbox(ctx)
    connections: set[_Connection] = set()
    servers: list[asyncio.Server] = []

    async def start(_: web.Application) -> None:
        loop = asyncio.get_running_loop()

        def connection() -> _Connection:
            return _Connection(
                mailbox,
                connections,
                hostname=HOSTNAME,
                ident="Fordring sandbox",
                enable_SMTPUTF8=True,
                loop=loop,
            )

        server = await loop.create_server(connection, settings.host, settings.smtp_port)
        servers.append(server)
        ctx.smtp_port = server.sockets[0].getsockname()[1]
        log.info("sandbox: SMTP on %s:%s", settings.host, ctx.smtp_port)

    async def stop(_: web.Application) -> None:
        for server in servers:
            server.close()
        for open_connection in list(connections):
            if open_connection.transport is not None:
                open_connection.transport.close()
        for server in servers:
            await server.wait_closed()
        # Let the closed connections' handlers see their cancellation before the loop moves on.
        await asyncio.sleep(0)

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
