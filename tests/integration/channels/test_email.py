"""E-mail through the real SMTP peer: the sandbox's mail server (aiosmtpd) in-process, its faults set
over the control API, its receipts checked at a signature-verifying webhook receiver; plus a
scripted SMTP server for the replies the sandbox never gives, and silent sockets for timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from services.common.ids import new_id
from services.dispatcher.adapters.base import ChannelError, Creditor, Outgoing, Recipient, SendResult
from services.dispatcher.adapters.email import EmailAdapter
from services.renderer.forms import Forms
from tests.support.renderer_samples import no_consumer_invoice
from tests.support.sandbox import Sandbox, running_sandbox

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def outgoing(link_base: str, **recipient: Any) -> Outgoing:
    """An invoice e-mail as the dispatcher hands it over: the renderer's message and a PDF."""
    delivery_id = new_id()
    view = replace(no_consumer_invoice(), payment_link=f"{link_base}/i/{delivery_id[-12:]}.sig")
    return Outgoing(
        delivery_id=delivery_id,
        tenant_id="tenant-email",
        invoice_id="inv-10024",
        invoice_number="10024",
        kind="invoice",
        channel="email",
        recipient=Recipient(
            customer_id="cus-1",
            customer_number="118204",
            name="Kari Nordmann",
            kind="consumer",
            email=recipient.get("email", "kari.nordmann@example.no"),
        ),
        creditor=Creditor(
            tenant_id="tenant-email",
            legal_name="Fjordline Energi AS",
            org_number="974760673",
            email="faktura@fjordline-energi.no",
        ),
        documents={"email": Forms.email(view), "pdf": PDF},
    )


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(tmp_path, open_after=0.2) as box:
        yield box


@pytest.fixture
async def adapter(sandbox: Sandbox) -> AsyncIterator[EmailAdapter]:
    email = EmailAdapter(host="127.0.0.1", port=sandbox.smtp_port, timeout=5, pool_size=3)
    yield email
    await email.close()


async def fault(sandbox: Sandbox, outcome: str, *, count: int = 1, seconds: float = 0) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{sandbox.url}/control/faults",
            json={"channel": "email", "outcome": outcome, "count": count, "seconds": seconds},
        ) as reply,
    ):
        assert reply.status == 200, await reply.text()


async def records(sandbox: Sandbox) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{sandbox.url}/control/records/email") as reply:
        assert reply.status == 200
        result: list[dict[str, Any]] = await reply.json()
        return result


def kept(sandbox: Sandbox) -> dict[str, EmailMessage]:
    """The messages the mail server kept, by file stem (our delivery id)."""
    messages = {}
    for path in sorted((sandbox.settings.root / "email").glob("*.eml")):
        message = BytesParser(policy=default).parsebytes(path.read_bytes())
        assert isinstance(message, EmailMessage)
        messages[path.stem] = message
    return messages


async def test_the_customer_receives_the_invoice_with_the_pdf(
    sandbox: Sandbox, adapter: EmailAdapter
) -> None:
    out = outgoing(sandbox.webhooks.url)

    result = await adapter.send(out)

    assert result == SendResult(f"{out.delivery_id}@fordring.invalid", "delivered", result.detail)
    message = kept(sandbox)[out.delivery_id]
    assert message["To"].addresses[0].addr_spec == "kari.nordmann@example.no"
    assert message["To"].addresses[0].display_name == "Kari Nordmann"
    assert message["From"].addresses[0].addr_spec == "faktura@fjordline-energi.no"
    assert message["From"].addresses[0].display_name == "Fjordline Energi AS"
    assert message["Reply-To"].addresses[0].addr_spec == "faktura@fjordline-energi.no"
    assert message["Message-ID"] == f"<{out.delivery_id}@fordring.invalid>"
    assert message["X-Fordring-Delivery"] == out.delivery_id
    assert message["Date"].datetime is not None
    assert "10024" in message["Subject"]
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    assert f"/i/{out.delivery_id[-12:]}.sig" in text.get_content()
    (attachment,) = message.iter_attachments()
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "invoice-10024.pdf"
    assert attachment.get_content() == PDF
    # The simulated customer opened it: it followed the tracked link.
    await sandbox.webhooks.wait_for(lambda w: w.opened, what="the customer's open")
    assert sandbox.webhooks.opened == [f"{out.delivery_id[-12:]}.sig"]


async def test_a_repeated_send_reaches_the_customer_once(sandbox: Sandbox, adapter: EmailAdapter) -> None:
    out = outgoing(sandbox.webhooks.url)

    first = await adapter.send(out)
    again = await adapter.send(replace(out, attempt=2))

    assert again.provider_ref == first.provider_ref
    assert list(kept(sandbox)) == [out.delivery_id]
    assert [r["result"] for r in await records(sandbox)] == ["accepted", "duplicate"]


async def test_an_unknown_mailbox_is_refused_for_good_and_flags_the_address(
    sandbox: Sandbox, adapter: EmailAdapter
) -> None:
    await fault(sandbox, "fail")

    with pytest.raises(ChannelError) as refused:
        await adapter.send(outgoing(sandbox.webhooks.url))

    assert (refused.value.retryable, refused.value.contact) == (False, "email")
    assert refused.value.code == "recipient_refused"
    assert "5.1.1" in refused.value.reason
    assert "kari" not in refused.value.reason
    assert kept(sandbox) == {}
    # The connection was reset, not lost: the next send goes through.
    out = outgoing(sandbox.webhooks.url)
    assert (await adapter.send(out)).state == "delivered"
    assert list(kept(sandbox)) == [out.delivery_id]


async def test_a_temporary_refusal_is_retryable_and_the_retry_delivers_once(
    sandbox: Sandbox, adapter: EmailAdapter
) -> None:
    await fault(sandbox, "error")
    out = outgoing(sandbox.webhooks.url)

    with pytest.raises(ChannelError) as refused:
        await adapter.send(out)
    assert refused.value.retryable
    assert refused.value.contact is None

    await adapter.send(replace(out, attempt=2))
    assert list(kept(sandbox)) == [out.delivery_id]


async def test_a_bounce_comes_back_as_a_signed_receipt(sandbox: Sandbox, adapter: EmailAdapter) -> None:
    await fault(sandbox, "bounce")
    out = outgoing(sandbox.webhooks.url)

    result = await adapter.send(out)

    assert result.state == "delivered"
    (payload,) = await sandbox.webhooks.wait_for(lambda w: w.of("email"), what="the bounce")
    assert sandbox.webhooks.refused == []
    (receipt,) = adapter.parse_receipts(json.dumps(payload).encode(), "application/json")
    assert (receipt.delivery_id, receipt.provider_ref) == (out.delivery_id, result.provider_ref)
    assert (receipt.status, receipt.contact) == ("bounced", "email")
    assert receipt.reason.startswith("550 5.1.1")
    # A bounced message is not read.
    await asyncio.sleep(0.4)
    assert sandbox.webhooks.opened == []


async def test_a_delayed_delivery_report_and_an_unopened_message(
    sandbox: Sandbox, adapter: EmailAdapter
) -> None:
    await fault(sandbox, "delay", seconds=0.3)
    await fault(sandbox, "unopened")
    delayed, unopened = outgoing(sandbox.webhooks.url), outgoing(sandbox.webhooks.url)

    await adapter.send(delayed)
    await adapter.send(unopened)

    (payload,) = await sandbox.webhooks.wait_for(lambda w: w.of("email"), what="the delivery report")
    (receipt,) = adapter.parse_receipts(json.dumps(payload).encode(), "application/json")
    assert (receipt.delivery_id, receipt.status, receipt.contact) == (delayed.delivery_id, "delivered", None)
    await sandbox.webhooks.wait_for(lambda w: w.opened, what="the open")
    await asyncio.sleep(0.4)
    assert sandbox.webhooks.opened == [f"{delayed.delivery_id[-12:]}.sig"]
    assert set(kept(sandbox)) == {delayed.delivery_id, unopened.delivery_id}


async def test_no_address_is_refused_before_any_smtp(sandbox: Sandbox, adapter: EmailAdapter) -> None:
    for address in ("", "kari.nordmann", "kari@example.no\r\nBcc: x@example.no"):
        with pytest.raises(ChannelError) as refused:
            await adapter.send(outgoing(sandbox.webhooks.url, email=address))
        assert (refused.value.retryable, refused.value.code, refused.value.contact) == (
            False,
            "no_email",
            "email",
        )
    assert await records(sandbox) == []


async def test_concurrent_sends_share_a_few_connections(sandbox: Sandbox, adapter: EmailAdapter) -> None:
    batch = [outgoing(sandbox.webhooks.url) for _ in range(24)]

    results = await asyncio.gather(*(adapter.send(out) for out in batch))

    assert {r.state for r in results} == {"delivered"}
    assert set(kept(sandbox)) == {out.delivery_id for out in batch}


# A scripted SMTP peer, for the replies the sandbox does not give and for dropped connections.


class Scripted:
    """aiosmtpd's handler answering RCPT / DATA as told (None: accept)."""

    def __init__(self) -> None:
        self.rcpt: str | None = None
        self.data: str | None = None
        self.accepted: list[bytes] = []

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.rcpt:
            return self.rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.data:
            return self.data
        self.accepted.append(envelope.original_content or b"")
        return "250 OK: queued"


@contextlib.asynccontextmanager
async def scripted_server() -> AsyncIterator[tuple[Scripted, int, list[SMTP]]]:
    handler = Scripted()
    connections: list[SMTP] = []
    loop = asyncio.get_running_loop()

    def protocol() -> SMTP:
        connection = SMTP(handler, hostname="scripted.invalid", loop=loop)
        connections.append(connection)
        return connection

    server = await loop.create_server(protocol, "127.0.0.1", 0)
    try:
        yield handler, server.sockets[0].getsockname()[1], connections
    finally:
        server.close()
        for connection in connections:
            if connection.transport is not None:
                connection.transport.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("stage", "reply", "retryable", "code", "contact"),
    [
        ("rcpt", "550 5.1.1 <kari.nordmann@example.no>: user unknown", False, "recipient_refused", "email"),
        ("rcpt", "553 mailbox name not allowed", False, "recipient_refused", "email"),
        ("rcpt", "550 5.7.1 relaying denied", False, "smtp_550", None),
        ("rcpt", "452 4.2.2 mailbox full", True, "smtp_452", None),
        ("data", "552 5.3.4 message too big", False, "message_refused", None),
        ("data", "451 4.7.1 greylisted", True, "smtp_451", None),
    ],
)
async def test_server_refusals_are_classified(
    stage: str, reply: str, retryable: bool, code: str, contact: str | None
) -> None:
    async with scripted_server() as (handler, port, _):
        setattr(handler, stage, reply)
        adapter = EmailAdapter(host="127.0.0.1", port=port, timeout=5)
        try:
            with pytest.raises(ChannelError) as refused:
                await adapter.send(outgoing("http://127.0.0.1:9"))
            assert (refused.value.retryable, refused.value.code, refused.value.contact) == (
                retryable,
                code,
                contact,
            )
            assert "kari" not in refused.value.reason
        finally:
            await adapter.close()


async def test_a_dropped_connection_is_replaced() -> None:
    async with scripted_server() as (handler, port, connections):
        adapter = EmailAdapter(host="127.0.0.1", port=port, timeout=5, pool_size=1)
        try:
            await adapter.send(outgoing("http://127.0.0.1:9"))
            # The server hangs up on the idle connection (a restart, an idle timeout).
            for connection in connections:
                assert connection.transport is not None
                connection.transport.close()
            await asyncio.sleep(0.1)

            await adapter.send(outgoing("http://127.0.0.1:9"))
            await adapter.send(outgoing("http://127.0.0.1:9"))
        finally:
            await adapter.close()
    assert len(handler.accepted) == 3
    # One connection for the first send, one for the two after the drop: reused, not one per send.
    assert len(connections) == 2


async def test_an_idle_connection_is_checked_before_reuse() -> None:
    async with scripted_server() as (handler, port, connections):
        adapter = EmailAdapter(host="127.0.0.1", port=port, timeout=5, pool_size=1, probe_after=0.0)
        try:
            for _ in range(3):
                await adapter.send(outgoing("http://127.0.0.1:9"))
        finally:
            await adapter.close()
    assert len(handler.accepted) == 3
    assert len(connections) == 1


Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def tcp_server(serve: Serve) -> AsyncIterator[int]:
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def test_a_server_that_never_answers_is_a_retryable_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3)
        writer.close()

    async with tcp_server(silent) as port:
        adapter = EmailAdapter(host="127.0.0.1", port=port, timeout=0.3)
        try:
            with pytest.raises(ChannelError) as failed:
                await adapter.send(outgoing("http://127.0.0.1:9"))
        finally:
            await adapter.close()
    assert (failed.value.retryable, failed.value.code) == (True, "timeout")


async def test_no_server_is_a_retryable_connection_error() -> None:
    async def closes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with tcp_server(closes) as port:
        pass
    adapter = EmailAdapter(host="127.0.0.1", port=port, timeout=2)
    try:
        with pytest.raises(ChannelError) as failed:
            await adapter.send(outgoing("http://127.0.0.1:9"))
    finally:
        await adapter.close()
    assert (failed.value.retryable, failed.value.code) == (True, "connection")


async def test_refused_credentials_are_for_the_operator() -> None:
    async def refuses_auth(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 scripted ESMTP\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"EHLO":
                writer.write(b"250-scripted\r\n250 AUTH PLAIN LOGIN\r\n")
            elif verb == b"AUTH":
                writer.write(b"535 5.7.8 authentication credentials invalid\r\n")
            else:
                writer.write(b"221 bye\r\n")
                break
            await writer.drain()
        writer.close()

    async with tcp_server(refuses_auth) as port:
        adapter = EmailAdapter(
            host="127.0.0.1", port=port, timeout=2, username="fordring", password="wrong", starttls=False
        )
        try:
            with pytest.raises(ChannelError) as refused:
                await adapter.send(outgoing("http://127.0.0.1:9"))
        finally:
            await adapter.close()
    assert (refused.value.retryable, refused.value.code) == (False, "credentials")
