"""SMS through the provider's HTTP API (PROTOCOLS.md, provider `sms`): the renderer's text with the
invoice link to the customer's mobile; delivery reports come by webhook."""

from __future__ import annotations

import re
import unicodedata

from services.dispatcher.adapters.base import (
    BadReceipt,
    ChannelError,
    ChannelName,
    Contact,
    Outgoing,
    Receipt,
    SendResult,
)
from services.dispatcher.adapters.http import E164, HttpClient, json_receipts, text_field, time_field

SENDER_LIMIT = 11
# Letters that NFKD does not take apart into an ASCII letter and a mark.
_TRANSLITERATE = str.maketrans({"æ": "ae", "ø": "o", "Ø": "O", "ß": "ss", "ð": "d", "Ð": "D"})
# "Ærlig" → "Aerlig", "ÆRLIG" → "AERLIG".
_CAPITAL_AE = re.compile(r"Æ(?=[a-zæøå])")
_COMPANY_FORMS = frozenset({"AS", "ASA", "AB", "ANS", "DA", "NUF", "ENK", "HB", "KB", "SA", "BA"})
# What a failure reason says when the number itself is bad (flagged for cleaning).
_DEAD_NUMBER = re.compile(r"unreachable|invalid|unknown subscriber|not in service|absent subscriber", re.I)


def sender_id(name: str) -> str:
    """An alphanumeric sender id from a name: at most 11 ASCII letters and digits, the company
    form dropped ("Fjordlys Økonomi AS" → "FjordlysOko"); "" when no letter is left (a sender of
    digits only would read as a phone number)."""
    words = _CAPITAL_AE.sub("Ae", name).replace("Æ", "AE").translate(_TRANSLITERATE).split()
    while len(words) > 1 and words[-1].upper().strip(".") in _COMPANY_FORMS:
        words.pop()
    plain = unicodedata.normalize("NFKD", "".join(words))
    kept = "".join(c for c in plain if c.isascii() and c.isalnum())[:SENDER_LIMIT]
    return kept if any(c.isalpha() for c in kept) else ""


class SmsAdapter:
    """The customer's mobile gets the renderer's text (with the tracked invoice link); the provider
    reports delivery by webhook.

    Constructor (keyword arguments):
      base_url         the provider's API, e.g. "http://127.0.0.1:8099" (the sandbox)
      api_key          the bearer token
      sender           the sender id for tenants without an `sms.sender` setting ("": the
                       creditor's name, made fit)
      timeout          seconds for a whole request; connect_timeout for the connection alone
    """

    channel: ChannelName = "sms"
    provider = "sms"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        sender: str = "",
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self._default_sender = sender
        self._http = HttpClient(
            "sms",
            base_url,
            api_key,
            timeout=timeout,
            connect_timeout=connect_timeout,
            bad_contacts={"invalid_recipient": "phone"},
        )

    def sender_for(self, out: Outgoing) -> str:
        """The tenant's sender, else the default, else the creditor's name; each made fit."""
        candidates = (
            out.creditor.settings.get("sms.sender", ""),
            self._default_sender,
            out.creditor.legal_name,
        )
        for candidate in candidates:
            sender = sender_id(candidate)
            if sender:
                return sender
        raise ChannelError("no usable SMS sender id", retryable=False, code="no_sender")

    async def send(self, out: Outgoing) -> SendResult:
        phone = out.recipient.phone
        if not E164.fullmatch(phone):
            raise ChannelError(
                "the customer has no mobile number in E.164",
                retryable=False,
                contact="phone",
                code="no_phone",
            )
        try:
            text = out.documents["sms"].decode()
        except (KeyError, UnicodeDecodeError):
            raise ChannelError("no SMS text was rendered", retryable=False, code="no_document") from None
        if not text.strip():
            raise ChannelError("the rendered SMS text is empty", retryable=False, code="no_document")
        reply = await self._http.post(
            "/sms/v1/messages",
            {"to": phone, "from": self.sender_for(out), "text": text, "reference": out.delivery_id},
            idempotency_key=out.delivery_id,
        )
        message_id = reply.body.get("id")
        if not isinstance(message_id, str) or not message_id:
            raise ChannelError("sms: the answer has no message id", retryable=True, code="bad_response")
        status = reply.body.get("status")
        detail = "duplicate" if reply.duplicate else status if isinstance(status, str) else ""
        return SendResult(provider_ref=message_id, state="accepted", detail=detail)

    def parse_receipts(self, body: bytes, content_type: str) -> list[Receipt]:
        receipts = []
        for item in json_receipts(body, content_type):
            status = text_field(item, "status")
            if status not in ("delivered", "failed"):
                raise BadReceipt(f"unknown SMS status {status!r}")
            message_id = text_field(item, "id")
            reason = text_field(item, "reason", required=False)
            contact: Contact | None = "phone" if status == "failed" and _DEAD_NUMBER.search(reason) else None
            receipts.append(
                Receipt(
                    event_id=text_field(item, "event_id"),
                    delivery_id=text_field(item, "delivery_id", required=False) or message_id,
                    provider_ref=message_id,
                    status="delivered" if status == "delivered" else "failed",
                    occurred_at=time_field(item),
                    reason=reason,
                    contact=contact,
                )
            )
        return receipts

    async def close(self) -> None:
        await self._http.close()
