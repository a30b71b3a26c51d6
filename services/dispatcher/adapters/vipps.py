"""Vipps MobilePay ePayment (PROTOCOLS.md, provider `vipps`): a payment request pushed to the
customer's app for what an invoice or reminder asks; no KID, so our `reference` is the delivery id
and the matcher matches on it. Only deliveries that ask for money (a Payment) can be one: a credit
note cannot.

Callbacks: CREATED (the request reached the app) → delivered, AUTHORIZED (the customer approved; the
money is reserved, to be captured) → paid, ABORTED/EXPIRED/TERMINATED → failed. The real API's
webhooks (no event id, `timestamp` for `at`) parse as well.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from services.dispatcher.adapters.base import (
    BadReceipt,
    ChannelError,
    ChannelName,
    Outgoing,
    Receipt,
    ReceiptStatus,
    SendResult,
)
from services.dispatcher.adapters.http import E164, HttpClient, json_receipts, text_field, time_field

# The ePayment API's rules for `reference` and `paymentDescription`.
REFERENCE = re.compile(r"[a-zA-Z0-9-]{8,64}")
DESCRIPTION_LIMIT = 100
_DESCRIPTIONS = {
    "invoice": {"nb": "Faktura {number}", "sv": "Faktura {number}", "en": "Invoice {number}"},
    "reminder": {
        "nb": "Purring på faktura {number}",
        "sv": "Påminnelse om faktura {number}",
        "en": "Reminder for invoice {number}",
    },
    "collection_notice": {
        "nb": "Inkassovarsel for faktura {number}",
        "sv": "Inkassovarning för faktura {number}",
        "en": "Debt collection notice for invoice {number}",
    },
}
# What ePayment takes (Vipps in Norway, MobilePay in Denmark and Finland).
CURRENCIES = frozenset({"NOK", "DKK", "EUR"})
_LANGUAGES = {"nb": "nb", "nn": "nb", "no": "nb", "sv": "sv"}
_EVENTS: dict[str, ReceiptStatus] = {
    "CREATED": "delivered",
    "AUTHORIZED": "paid",
    "ABORTED": "failed",
    "EXPIRED": "failed",
    "TERMINATED": "failed",
}
# Events about the money after authorisation (ours to send), not about the delivery.
_NOT_RECEIPTS = frozenset({"CAPTURED", "CANCELLED", "REFUNDED"})


def _system_version() -> str:
    try:
        return version("fordring")
    except PackageNotFoundError:
        return "0"


def payment_description(kind: str, number: str, language: str) -> str:
    """What the app shows with the request: "Faktura 10042" in the customer's language (nb/sv/en)."""
    texts = _DESCRIPTIONS.get(kind, _DESCRIPTIONS["invoice"])
    lang = _LANGUAGES.get(language.replace("_", "-").partition("-")[0].lower(), "en")
    return texts[lang].format(number=number)[:DESCRIPTION_LIMIT]


class VippsAdapter:
    """A payment request pushed to the customer's Vipps app (ePayment, `userFlow` PUSH_MESSAGE).

    Constructor (keyword arguments):
      base_url                the ePayment API, e.g. "https://api.vipps.no" (the sandbox's URL in tests)
      api_key                 the bearer token (the access token in production)
      subscription_key        `Ocp-Apim-Subscription-Key`, sent with every request
      merchant_serial_number  `Merchant-Serial-Number` (MSN), sent with every request
      system_name             `Vipps-System-Name` (the version is this package's)
      timeout                 seconds for a whole request; connect_timeout for the connection alone
    """

    channel: ChannelName = "vipps"
    provider = "vipps"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        subscription_key: str,
        merchant_serial_number: str,
        system_name: str = "fordring",
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self._http = HttpClient(
            "vipps",
            base_url,
            api_key,
            timeout=timeout,
            connect_timeout=connect_timeout,
            headers={
                "Ocp-Apim-Subscription-Key": subscription_key,
                "Merchant-Serial-Number": merchant_serial_number,
                "Vipps-System-Name": system_name,
                "Vipps-System-Version": _system_version(),
                "Vipps-System-Plugin-Name": "fordring-dispatcher",
                "Vipps-System-Plugin-Version": _system_version(),
            },
            bad_contacts={"invalid_phone": "phone"},
        )

    def request_for(self, out: Outgoing) -> dict[str, Any]:
        """The ePayment request for `out`, or ChannelError when it cannot be one."""
        payment = out.payment
        if payment is None:
            raise ChannelError(f"a {out.kind} asks for no payment", retryable=False, code="no_payment")
        if payment.currency not in CURRENCIES or payment.amount_minor <= 0:
            raise ChannelError(
                f"ePayment takes amounts above zero in {', '.join(sorted(CURRENCIES))}",
                retryable=False,
                code="not_payable",
            )
        if not E164.fullmatch(out.recipient.phone):
            raise ChannelError(
                "the customer has no mobile number in E.164",
                retryable=False,
                contact="phone",
                code="no_phone",
            )
        if not REFERENCE.fullmatch(out.delivery_id):
            raise ChannelError(
                "the delivery id cannot be a Vipps reference", retryable=False, code="bad_reference"
            )
        return {
            "amount": {"currency": payment.currency, "value": payment.amount_minor},
            "paymentMethod": {"type": "WALLET"},
            "customer": {"phoneNumber": out.recipient.phone.removeprefix("+")},
            "reference": out.delivery_id,
            "userFlow": "PUSH_MESSAGE",
            "paymentDescription": payment_description(out.kind, out.invoice_number, out.recipient.language),
        }

    async def send(self, out: Outgoing) -> SendResult:
        reply = await self._http.post(
            "/epayment/v1/payments", self.request_for(out), idempotency_key=out.delivery_id
        )
        reference = reply.body.get("reference")
        if reference != out.delivery_id:
            raise ChannelError(
                "vipps: the answer names another reference", retryable=True, code="bad_response"
            )
        return SendResult(
            provider_ref=reference, state="accepted", detail="duplicate" if reply.duplicate else ""
        )

    def parse_receipts(self, body: bytes, content_type: str) -> list[Receipt]:
        receipts = []
        for item in json_receipts(body, content_type):
            name = text_field(item, "name")
            if name in _NOT_RECEIPTS:
                continue
            status = _EVENTS.get(name)
            if status is None:
                raise BadReceipt(f"unknown ePayment event {name!r}")
            reference = text_field(item, "reference")
            occurred_at = time_field(item, "at" if "at" in item else "timestamp")
            event_id = text_field(item, "event_id", required=False) or (
                f"{reference}:{name}:{text_field(item, 'pspReference', required=False)}"
            )
            receipts.append(
                Receipt(
                    event_id=event_id,
                    delivery_id=text_field(item, "delivery_id", required=False) or reference,
                    provider_ref=reference,
                    status=status,
                    occurred_at=occurred_at,
                    reason=_reason(name, item.get("amount")),
                )
            )
        return receipts

    async def close(self) -> None:
        await self._http.close()


def _reason(name: str, amount: Any) -> str:
    """For the operator: the event, and what was authorised."""
    if name == "CREATED":
        return ""
    if name == "AUTHORIZED":
        if not isinstance(amount, dict) or not isinstance(amount.get("value"), int):
            raise BadReceipt("an AUTHORIZED event must carry the amount")
        return f"authorized {amount['value']} {amount.get('currency', '')}".rstrip()
    return name.lower()
