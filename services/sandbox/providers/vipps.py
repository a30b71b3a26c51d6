"""Vipps MobilePay ePayment (PROTOCOLS.md, `vipps`): `POST /epayment/v1/payments`, then the
callbacks a customer's app causes: CREATED when the push arrives, AUTHORIZED when they approve."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from aiohttp import web

from services.common.clock import isoformat_utc
from services.common.ids import new_id
from services.sandbox.context import SandboxContext
from services.sandbox.http_api import KEY as _KEY
from services.sandbox.http_api import bearer, seen_before
from services.sandbox.http_api import digest as _digest
from services.sandbox.http_api import json_object as _json_object
from services.sandbox.http_api import refuse as _refuse
from services.sandbox.settings import SandboxSettings

CHANNEL = "vipps"
CREATED_AFTER = 0.1
DECIDED_AFTER = 1.0
_REFERENCE = re.compile(r"[a-zA-Z0-9-]{8,64}")
# Country code and number, no plus (ePayment's `phoneNumber`).
_PHONE = re.compile(r"[1-9][0-9]{7,14}")
_CURRENCIES = frozenset({"NOK", "DKK", "EUR"})
_FLOWS = frozenset({"PUSH_MESSAGE", "WEB_REDIRECT", "NATIVE_REDIRECT", "QR"})
DESCRIPTION_LIMIT = 100
# What the customer does instead of approving, per fault.
_DECLINED = {"bounce": "EXPIRED", "reject": "ABORTED", "return": "TERMINATED"}


def _authorized(request: web.Request) -> bool:
    return bearer(request) and bool(request.headers.get("Ocp-Apim-Subscription-Key", "").strip())


def _problem(body: dict[str, Any]) -> tuple[str, str] | None:
    amount = body.get("amount")
    if (
        not isinstance(amount, dict)
        or amount.get("currency") not in _CURRENCIES
        or not isinstance(amount.get("value"), int)
        or isinstance(amount.get("value"), bool)
        or amount["value"] <= 0
    ):
        return "invalid_amount", "'amount' must be {currency: NOK|DKK|EUR, value: minor units > 0}"
    method = body.get("paymentMethod")
    if not isinstance(method, dict) or method.get("type") not in ("WALLET", "CARD"):
        return "invalid_payment_method", "'paymentMethod.type' must be WALLET or CARD"
    customer = body.get("customer")
    phone = customer.get("phoneNumber") if isinstance(customer, dict) else None
    if body.get("userFlow") == "PUSH_MESSAGE" and (not isinstance(phone, str) or not _PHONE.fullmatch(phone)):
        return "invalid_phone", "'customer.phoneNumber' must be the country code and number, no '+'"
    reference = body.get("reference")
    if not isinstance(reference, str) or not _REFERENCE.fullmatch(reference):
        return "invalid_reference", "'reference' must be 8-64 of [a-zA-Z0-9-]"
    if body.get("userFlow") not in _FLOWS:
        return "invalid_user_flow", f"'userFlow' must be one of {sorted(_FLOWS)}"
    if body["userFlow"] in ("WEB_REDIRECT", "NATIVE_REDIRECT") and not isinstance(body.get("returnUrl"), str):
        return "invalid_return_url", "'returnUrl' is required for redirect flows"
    description = body.get("paymentDescription")
    if not isinstance(description, str) or not 0 < len(description) <= DESCRIPTION_LIMIT:
        return "invalid_description", f"'paymentDescription' must be 1-{DESCRIPTION_LIMIT} characters"
    return None


def setup(app: web.Application, ctx: SandboxContext, settings: SandboxSettings) -> None:
    inbox = ctx.inbox(CHANNEL)

    async def create(request: web.Request) -> web.Response:
        if not _authorized(request):
            return _refuse(
                401, "unauthorized", "Authorization: Bearer and Ocp-Apim-Subscription-Key are required"
            )
        msn = request.headers.get("Merchant-Serial-Number", "")
        if not msn.isdigit():
            return _refuse(400, "invalid_msn", "Merchant-Serial-Number is required")
        key = request.headers.get("Idempotency-Key", "")
        if not _KEY.fullmatch(key):
            return _refuse(400, "invalid_idempotency_key", "Idempotency-Key: 1-128 of [A-Za-z0-9._:-]")
        body = await _json_object(request)
        if body is None:
            inbox.record(key, "refused", error="invalid_request")
            return _refuse(400, "invalid_request", "the body must be a JSON object")
        problem = _problem(body)
        if problem is not None:
            inbox.record(key, "refused", error=problem[0])
            return _refuse(400, *problem)
        reference: str = body["reference"]
        answer = {"reference": reference, "redirectUrl": f"{request.url.origin()}/vipps/landing/{reference}"}
        digest = _digest(body)
        replay = seen_before(inbox, key, digest, "payment", answer)
        if replay is not None:
            return replay

        fault = ctx.faults.take(CHANNEL)
        outcome = fault.outcome if fault else None
        if outcome == "fail":
            inbox.record(key, "refused", error="invalid_phone", fault=outcome)
            return _refuse(400, "invalid_phone", "no Vipps user has this number")
        if outcome == "error":
            inbox.record(key, "refused", error="unavailable", fault=outcome)
            return _refuse(503, "unavailable", "ePayment is busy: try again later")

        inbox.keep(f"{key}.json", json.dumps({"msn": msn, **body}, ensure_ascii=False).encode())
        inbox.record(key, "accepted", id=reference, digest=digest, reference=reference, fault=outcome)

        psp_reference = new_id()

        def callback(name: str, after: float) -> None:
            event = {
                "event_id": new_id(),
                "msn": msn,
                "reference": reference,
                "pspReference": psp_reference,
                "delivery_id": key,
                "name": name,
                "amount": body["amount"],
                "success": True,
                "at": isoformat_utc(ctx.now() + timedelta(seconds=after)),
            }
            ctx.callbacks.post(CHANNEL, event, delay=after)

        created_after = fault.seconds if fault is not None and outcome == "delay" else CREATED_AFTER
        callback("CREATED", created_after)
        if outcome in _DECLINED:
            callback(_DECLINED[outcome], created_after + DECIDED_AFTER)
        elif outcome != "unopened":
            callback("AUTHORIZED", created_after + DECIDED_AFTER)
        return web.json_response(answer, status=201)

    app.router.add_post("/epayment/v1/payments", create)
