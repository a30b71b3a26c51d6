"""E-mail over SMTP (PROTOCOLS.md, provider `email`): the renderer's message, addressed and with the
PDF attached, handed to the mail provider's SMTP server.

The server's acceptance is the delivery (a bounce may still come by webhook). The Message-ID is
`<delivery_id@fordring.invalid>`, so a retry of a send the server did take is recognised as the same
message. Connections are kept open and reused (a handshake, STARTTLS and AUTH cost more than the
message itself), each carrying one transaction at a time.

Server replies can quote the recipient's address: only reply codes reach logs and errors.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime, formataddr
from urllib.parse import quote

import aiosmtplib

from services.dispatcher.adapters.base import (
    MESSAGE_KINDS,
    BadReceipt,
    ChannelError,
    ChannelName,
    Contact,
    DocumentKind,
    Outgoing,
    Receipt,
    SendResult,
)
from services.dispatcher.adapters.http import json_receipts, text_field, time_field

log = logging.getLogger(__name__)

MESSAGE_ID_DOMAIN = "fordring.invalid"
DELIVERY_HEADER = "X-Fordring-Delivery"
# The headers this adapter owns: whatever the renderer's message had under these names is replaced.
_OWNED = frozenset(h.lower() for h in ("From", "To", "Reply-To", "Date", "Message-ID", DELIVERY_HEADER))
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Deliberately plain: one @, a dot in the domain, nothing that could break a header or an envelope.
_MAILBOX = re.compile(r"[^@\s<>()\[\]\\,;:\"]+@[^@\s<>()\[\]\\,;:\"]+\.[^@\s<>()\[\]\\,;:\"]+")
_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
# The renderer's file names (services/renderer/forms.py `filename`), which this module must not import.
_STEMS: dict[DocumentKind, str] = {
    "invoice": "invoice",
    "credit_note": "credit-note",
    "nudge": "nudge",
    "reminder": "reminder",
    "collection_notice": "collection-notice",
}


def attachment_name(kind: DocumentKind, number: str) -> str:
    """The PDF's file name as the renderer names it: `invoice-10042.pdf`."""
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in number)[:40]
    return f"{_STEMS[kind]}-{safe}.pdf"


def message_id(delivery_id: str) -> str:
    """The Message-ID's content (without the angle brackets), also the provider reference."""
    return f"{delivery_id}@{MESSAGE_ID_DOMAIN}"


def mailbox(value: str) -> str:
    """`value` as a plain address with an international domain in its IDNA form, or "" when it is not
    an address a mail server could take."""
    value = value.strip()
    if not _MAILBOX.fullmatch(value):
        return ""
    local, _, domain = value.rpartition("@")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return ""
    return f"{local}@{domain}"


def build_message(out: Outgoing, *, sender: str, reply_to: str = "", now: datetime | None = None) -> bytes:
    """The renderer's message (subject, text, HTML) with our headers and the PDF attached, as sent (a
    nudge is only the message: it has no PDF).

    `sender` is the From address; `reply_to` defaults to it. Raises ChannelError when the recipient
    has no usable address or a form is missing (nothing a retry can change).

    Assembled as bytes rather than through the `email` package's generator, which re-wrote every
    line of the renderer's parts and cost more than the SMTP transaction itself: the renderer's
    message headers (Subject, Content-Language, …) move up to the outer multipart/mixed, its content
    headers and body stay as they are (its multipart/alternative becomes the first part), and the
    PDF follows in base64.
    """
    to = _recipient(out.recipient.email)
    if not _SAFE_ID.fullmatch(out.delivery_id):
        raise ChannelError(
            "the delivery id cannot be a Message-ID", retryable=False, code="invalid_delivery_id"
        )
    rendered, pdf = out.documents.get("email"), out.documents.get("pdf")
    if not rendered or (not pdf and out.kind not in MESSAGE_KINDS):
        missing = "email" if not rendered else "pdf"
        raise ChannelError(f"no {missing} form was rendered", retryable=False, code="no_document")
    fields, body = _split_message(rendered)
    if not any(name.lower() == "subject" and value.strip() for name, value in fields):
        raise ChannelError("the rendered e-mail has no subject", retryable=False, code="no_document")
    outer: list[str] = []
    inner: list[str] = []
    for name, value in fields:
        lowered = name.lower()
        if _content_header(name):
            inner.append(f"{name}:{value}")
        elif lowered not in _OWNED and lowered != "mime-version":
            outer.append(f"{name}:{value}")
    boundary = f"=_fordring_{out.delivery_id}"
    outer += [
        f"From: {formataddr((_one_line(out.creditor.legal_name), sender), 'utf-8')}",
        f"To: {formataddr((_one_line(out.recipient.name), to), 'utf-8')}",
        f"Reply-To: {reply_to or sender}",
        f"Date: {format_datetime(now or datetime.now(UTC))}",
        f"Message-ID: <{message_id(out.delivery_id)}>",
        f"{DELIVERY_HEADER}: {out.delivery_id}",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="{boundary}"',
    ]
    name = attachment_name(out.kind, out.invoice_number)
    disposition = (
        f'attachment; filename="{name}"' if name.isascii() else f"attachment; filename*=utf-8''{quote(name)}"
    )
    attachment = [
        "Content-Type: application/pdf",
        "Content-Transfer-Encoding: base64",
        f"Content-Disposition: {disposition}",
    ]
    crlf = "\r\n"
    attached = (
        (
            f"{crlf}--{boundary}{crlf}".encode(),
            (crlf.join(attachment) + crlf + crlf).encode(),
            base64.encodebytes(pdf).replace(b"\n", b"\r\n"),
            f"--{boundary}--{crlf}".encode(),
        )
        if pdf
        else (f"{crlf}--{boundary}--{crlf}".encode(),)
    )
    return b"".join(
        (
            (crlf.join(outer) + crlf + crlf).encode("ascii", "surrogateescape"),
            f"--{boundary}{crlf}".encode(),
            (crlf.join(inner) + crlf + crlf).encode("ascii", "surrogateescape"),
            _CRLF.sub(b"\r\n", body),
            *attached,
        )
    )


_CRLF = re.compile(rb"\r?\n")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _split_message(rendered: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """The message's header fields (name, value as written, folded lines kept) and its body."""
    text = rendered.replace(b"\r\n", b"\n")
    head, _, body = text.partition(b"\n\n")
    fields: list[tuple[str, str]] = []
    for line in head.decode("ascii", "surrogateescape").split("\n"):
        if line[:1] in (" ", "\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, f"{value}\r\n{line}")
        elif ":" in line:
            name, _, value = line.partition(":")
            fields.append((name.strip(), value))
    return fields, body


def _content_header(name: str) -> bool:
    lowered = name.lower()
    return lowered.startswith("content-") and lowered != "content-language"


def _recipient(value: str) -> str:
    to = mailbox(value)
    if to and not to.isascii():
        # A mailbox name beyond ASCII needs SMTPUTF8 (RFC 6531), which few servers take.
        raise ChannelError(
            "the customer's e-mail address needs SMTPUTF8", retryable=False, code="unsupported_address"
        )
    if not to:
        raise ChannelError(
            "the customer has no usable e-mail address", retryable=False, code="no_email", contact="email"
        )
    return to


def _status(reply: str) -> str:
    """The enhanced status code (RFC 3463) in a server reply, e.g. "5.1.1", else ""."""
    match = _ENHANCED.search(reply)
    return ".".join(match.groups()) if match else ""


def _bad_mailbox(code: int, reply: str) -> bool:
    """Whether a permanent RCPT refusal is about the mailbox itself (not our sender, a policy, or the
    server): 5.1.x address and 5.2.x mailbox statuses, or a bare 550/551/553."""
    status = _status(reply)
    if status:
        return status.startswith(("5.1.", "5.2.", "5.4.4"))
    return code in (550, 551, 553)


def _refused(stage: str, code: int, reply: str) -> ChannelError:
    """A server's refusal at `stage` (connect, MAIL, RCPT, DATA) as a ChannelError."""
    status = _status(reply)
    shown = f"{code} {status}".strip()
    log.warning("email: the server refused %s: %s", stage, shown)
    if code < 500:
        return ChannelError(
            f"email: temporarily refused at {stage} ({shown})", retryable=True, code=f"smtp_{code}"
        )
    if stage == "RCPT":
        contact: Contact | None = "email" if _bad_mailbox(code, reply) else None
        return ChannelError(
            f"email: the recipient was refused ({shown})",
            retryable=False,
            code="recipient_refused" if contact else f"smtp_{code}",
            contact=contact,
        )
    if stage == "MAIL":
        return ChannelError(
            f"email: our sender was refused ({shown})", retryable=False, code="sender_refused"
        )
    return ChannelError(f"email: the message was refused ({shown})", retryable=False, code="message_refused")


class _Connections:
    """At most `size` SMTP connections, each carrying one transaction at a time and kept open between
    sends (the most recently used first, so the rest may time out). One idle longer than
    `probe_after` seconds is checked with a NOOP before reuse: the server may have closed it."""

    def __init__(self, factory: Callable[[], aiosmtplib.SMTP], size: int, probe_after: float) -> None:
        self._factory = factory
        self._slots = asyncio.Semaphore(size)
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []
        self._probe_after = probe_after
        self._closed = False

    async def acquire(self) -> aiosmtplib.SMTP:
        await self._slots.acquire()
        try:
            return await self._open()
        except BaseException:
            self._slots.release()
            raise

    def release(self, client: aiosmtplib.SMTP, *, reusable: bool) -> None:
        if reusable and not self._closed and client.is_connected:
            self._idle.append((client, time.monotonic()))
        else:
            client.close()
        self._slots.release()

    async def _open(self) -> aiosmtplib.SMTP:
        while self._idle:
            client, used = self._idle.pop()
            if not client.is_connected:
                client.close()
                continue
            if time.monotonic() - used < self._probe_after:
                return client
            try:
                await client.noop()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
                continue
            return client
        client = self._factory()
        await client.connect()
        return client

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for client, _ in idle:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit(timeout=2)
            client.close()


class EmailAdapter:
    """Sends through one SMTP server (the mail provider's submission port, or the sandbox's).

    Keyword arguments:
    - `host`, `port`: the server. `use_tls`: TLS from the first byte (port 465); `starttls`: True
      requires STARTTLS, False never asks, None (default) upgrades when the server offers it.
    - `username`, `password`: AUTH, when both are given (after STARTTLS).
    - `sender`: the From address for creditors without an e-mail address of their own (a creditor's
      own address is used when it has one). `bounce_address`: the envelope sender (MAIL FROM),
      where the provider returns bounces; the From address by default.
    - `timeout`: seconds for connecting and for each SMTP command.
    - `pool_size`: connections kept open (sends beyond it wait for one); `probe_after`: seconds idle
      after which a connection is checked with NOOP before reuse.
    - `local_hostname`: the EHLO name (the host's FQDN by default); `validate_certs`: check TLS certs.
    """

    channel: ChannelName = "email"
    provider = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int = 587,
        username: str = "",
        password: str = "",
        starttls: bool | None = None,
        use_tls: bool = False,
        sender: str = "",
        bounce_address: str = "",
        timeout: float = 30.0,
        pool_size: int = 4,
        probe_after: float = 10.0,
        local_hostname: str | None = None,
        validate_certs: bool = True,
    ) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self._sender = sender
        self._bounce_address = bounce_address
        self._timeout = timeout

        def connection() -> aiosmtplib.SMTP:
            return aiosmtplib.SMTP(
                hostname=host,
                port=port,
                username=username or None,
                password=password or None,
                use_tls=use_tls,
                start_tls=False if use_tls else starttls,
                timeout=timeout,
                local_hostname=local_hostname,
                validate_certs=validate_certs,
            )

        self._connections = _Connections(connection, pool_size, probe_after)

    def sender_for(self, out: Outgoing) -> str:
        """The From address: the creditor's own, else the configured sender."""
        sender = mailbox(out.creditor.email) or mailbox(self._sender)
        if not sender.isascii() or not sender:
            raise ChannelError("no sender address for this creditor", retryable=False, code="no_sender")
        return sender

    async def send(self, out: Outgoing) -> SendResult:
        sender = self.sender_for(out)
        reply_to = mailbox(out.creditor.settings.get("email.reply_to", ""))
        raw = build_message(out, sender=sender, reply_to=reply_to if reply_to.isascii() else "")
        reply = await self._transaction(self._bounce_address or sender, mailbox(out.recipient.email), raw)
        return SendResult(provider_ref=message_id(out.delivery_id), state="delivered", detail=reply[:200])

    async def _transaction(self, envelope_from: str, to: str, raw: bytes) -> str:
        """MAIL, RCPT, DATA on a pooled connection; the server's final reply, or ChannelError."""
        try:
            client = await self._connections.acquire()
        except aiosmtplib.SMTPAuthenticationError as exc:
            log.warning("email: AUTH refused: %s", exc.code)
            raise ChannelError(
                f"email: our SMTP credentials were refused ({exc.code})", retryable=False, code="credentials"
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise _refused("connect", exc.code, exc.message) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise _unreachable("connect", exc) from None
        reusable = False
        try:
            _, reply = await client.sendmail(envelope_from, [to], raw)
            reusable = True
        except aiosmtplib.SMTPRecipientsRefused as exc:
            # sendmail has reset the transaction (RSET): the connection serves the next send.
            reusable = client.is_connected
            refusal = exc.recipients[0]
            raise _refused("RCPT", refusal.code, refusal.message) from None
        except aiosmtplib.SMTPResponseException as exc:
            # 421: the server is closing the connection.
            reusable = client.is_connected and exc.code != 421
            stage = "MAIL" if isinstance(exc, aiosmtplib.SMTPSenderRefused) else "DATA"
            raise _refused(stage, exc.code, exc.message) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            # A timeout or a dropped connection: whether the server took the message is unknown; a
            # retry carries the same Message-ID.
            raise _unreachable("send", exc) from None
        finally:
            self._connections.release(client, reusable=reusable)
        return reply

    def parse_receipts(self, body: bytes, content_type: str) -> list[Receipt]:
        """The provider's bounce and delivery reports (PROTOCOLS.md, e-mail)."""
        receipts = []
        for item in json_receipts(body, content_type):
            status = text_field(item, "status")
            if status not in ("bounced", "delivered"):
                raise BadReceipt(f"unknown e-mail status {status!r}")
            ref = text_field(item, "message_id", required=False).strip().strip("<>")
            delivery_id = text_field(item, "delivery_id", required=False) or _delivery_of(ref)
            if not delivery_id:
                raise BadReceipt("the receipt names neither our delivery nor our Message-ID")
            reason = text_field(item, "reason", required=False)
            receipts.append(
                Receipt(
                    event_id=text_field(item, "event_id"),
                    delivery_id=delivery_id,
                    provider_ref=ref or message_id(delivery_id),
                    status="bounced" if status == "bounced" else "delivered",
                    occurred_at=time_field(item),
                    reason=reason,
                    contact="email" if status == "bounced" and not _soft(reason) else None,
                )
            )
        return receipts

    async def close(self) -> None:
        await self._connections.close()


def _delivery_of(ref: str) -> str:
    local, _, domain = ref.rpartition("@")
    return local if domain == MESSAGE_ID_DOMAIN else ""


def _soft(reason: str) -> bool:
    """A soft bounce (a full mailbox, a greylisting that gave up: 4xx) says nothing bad of the address."""
    return reason.lstrip().startswith("4") or _status(reason).startswith("4.")


def _unreachable(stage: str, exc: BaseException) -> ChannelError:
    timeout = isinstance(exc, TimeoutError)
    log.warning("email: %s failed: %s", stage, type(exc).__name__)
    return ChannelError(
        f"email: {'no answer in time' if timeout else 'cannot reach the server'} at {stage}",
        retryable=True,
        code="timeout" if timeout else "connection",
    )
