"""eFaktura (PROTOCOLS.md, provider `efaktura`): a consumer's invoice in their online bank, through
the creditor's bank and Mastercard Payment Services.

A consumer who said "Ja takk til alle" is found in the directory by national id, phone or e-mail
(with name and postal code); businesses get EHF, never eFaktura. Each claim carries the issuer's org
number, KID, amount, due date, the PDF and the signed link to the invoice page.
"""

from __future__ import annotations

import base64
from typing import Any

from services.dispatcher.adapters.base import (
    BadReceipt,
    ChannelError,
    ChannelName,
    Outgoing,
    Receipt,
    Recipient,
    SendResult,
)
from services.dispatcher.adapters.http import HttpClient, json_receipts, text_field, time_field

# What a rejection's reason says when the consumer is no longer an eFaktura receiver.
_GONE = ("not registered", "no longer", "unknown recipient", "consent")


def _client(base_url: str, api_key: str, timeout: float, connect_timeout: float) -> HttpClient:
    return HttpClient(
        "efaktura",
        base_url,
        api_key,
        timeout=timeout,
        connect_timeout=connect_timeout,
        bad_contacts={"unknown_recipient": "efaktura"},
    )


class EfakturaRegistry:
    """The eFaktura directory: is this consumer an eFaktura receiver, and under which id.

    Constructor (keyword arguments): base_url (the eFaktura API), api_key (the bearer token),
    timeout and connect_timeout (seconds). A directory that cannot answer raises a retryable
    ChannelError: that is not a "no".
    """

    channel: ChannelName = "efaktura"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        http: HttpClient | None = None,
    ) -> None:
        self._http = http or _client(base_url, api_key, timeout, connect_timeout)

    async def recipient_id(self, recipient: Recipient) -> str | None:
        """The directory's id of the consumer, None when they cannot get eFaktura from us.
        ChannelError when the directory cannot answer (retryable: not a "no")."""
        if recipient.kind != "consumer" or not recipient.name:
            return None
        query = {
            "national_id": recipient.national_id,
            "phone": recipient.phone,
            "email": recipient.email,
            "name": recipient.name,
            "postal_code": recipient.address.postal_code,
        }
        if not (recipient.national_id or recipient.phone or recipient.email):
            return None
        reply = await self._http.post("/efaktura/v1/lookup", {k: v for k, v in query.items() if v})
        if reply.body.get("reachable") is not True:
            return None
        ident = reply.body.get("recipient_id")
        if not isinstance(ident, str) or not ident:
            raise ChannelError(
                "efaktura: a reachable answer without a recipient id", retryable=True, code="bad_response"
            )
        return ident

    async def reachable(self, recipient: Recipient) -> bool:
        return await self.recipient_id(recipient) is not None

    async def close(self) -> None:
        await self._http.close()


class EfakturaAdapter:
    """A consumer's claim to their online bank: the directory's lookup for the recipient id, then
    the invoice with its PDF, KID, amount, due date and link; the bank's receipt comes by webhook.

    Constructor (keyword arguments): base_url (the eFaktura API), api_key (the bearer token),
    timeout and connect_timeout (seconds). `registry` is the directory on the same connection pool,
    for the dispatcher's channel choice.
    """

    channel: ChannelName = "efaktura"
    provider = "efaktura"

    def __init__(
        self, *, base_url: str, api_key: str, timeout: float = 10.0, connect_timeout: float = 5.0
    ) -> None:
        self._http = _client(base_url, api_key, timeout, connect_timeout)
        self.registry = EfakturaRegistry(base_url=base_url, api_key=api_key, http=self._http)

    async def send(self, out: Outgoing) -> SendResult:
        if out.recipient.kind != "consumer":
            raise ChannelError("eFaktura is for consumers only", retryable=False, code="not_consumer")
        claim = self.claim_for(out)
        recipient_id = await self.registry.recipient_id(out.recipient)
        if recipient_id is None:
            raise ChannelError(
                "the customer is not an eFaktura receiver",
                retryable=False,
                contact="efaktura",
                code="not_registered",
            )
        reply = await self._http.post(
            "/efaktura/v1/invoices", {"recipient_id": recipient_id, **claim}, idempotency_key=out.delivery_id
        )
        invoice_id = reply.body.get("id")
        if not isinstance(invoice_id, str) or not invoice_id:
            raise ChannelError("efaktura: the answer has no id", retryable=True, code="bad_response")
        return SendResult(
            provider_ref=invoice_id, state="accepted", detail="duplicate" if reply.duplicate else ""
        )

    @staticmethod
    def claim_for(out: Outgoing) -> dict[str, Any]:
        """The claim the bank gets (all but the recipient id), or ChannelError when `out` cannot be one."""
        payment = out.payment
        if payment is None:
            raise ChannelError(f"a {out.kind} asks for no payment", retryable=False, code="no_payment")
        if payment.currency != "NOK" or payment.amount_minor <= 0:
            raise ChannelError(
                "eFaktura carries claims above zero in NOK only", retryable=False, code="not_payable"
            )
        if not payment.kid or not payment.payment_link:
            raise ChannelError(
                "an eFaktura claim needs a KID and a link", retryable=False, code="not_payable"
            )
        pdf = out.documents.get("pdf")
        if not pdf:
            raise ChannelError("no PDF was rendered", retryable=False, code="no_document")
        return {
            "issuer_org": out.creditor.org_number,
            "invoice_number": out.invoice_number,
            "kid": payment.kid,
            "amount_minor": payment.amount_minor,
            "currency": payment.currency,
            "due_date": payment.due_date.isoformat(),
            "link": payment.payment_link,
            "pdf_base64": base64.b64encode(pdf).decode(),
        }

    def parse_receipts(self, body: bytes, content_type: str) -> list[Receipt]:
        receipts = []
        for item in json_receipts(body, content_type):
            status = text_field(item, "status")
            if status not in ("delivered", "rejected"):
                raise BadReceipt(f"unknown eFaktura status {status!r}")
            invoice_id = text_field(item, "id")
            reason = text_field(item, "reason", required=False)
            gone = status == "rejected" and any(words in reason.lower() for words in _GONE)
            receipts.append(
                Receipt(
                    event_id=text_field(item, "event_id"),
                    delivery_id=text_field(item, "delivery_id", required=False) or invoice_id,
                    provider_ref=invoice_id,
                    status="delivered" if status == "delivered" else "rejected",
                    occurred_at=time_field(item),
                    reason=reason,
                    contact="efaktura" if gone else None,
                )
            )
        return receipts

    async def close(self) -> None:
        await self._http.close()
