"""eFaktura (PROTOCOLS.md, `efaktura`): the directory lookup (`POST /efaktura/v1/lookup`) and the
invoice drop (`POST /efaktura/v1/invoices`) with a receipt by webhook.

Default directory rule: a consumer is reachable when their phone number's last digit is even (no
phone: not reachable); `POST /control/registry` overrides it per national id, phone or e-mail.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import timedelta
from typing import Any

from aiohttp import web
from stdnum.no import orgnr

from services.common.clock import isoformat_utc, parse_iso_date
from services.common.ids import new_id
from services.common.kid import InvalidKid, validate_kid
from services.sandbox.context import SandboxContext
from services.sandbox.http_api import KEY as _KEY
from services.sandbox.http_api import bearer as _authorized
from services.sandbox.http_api import digest as _digest
from services.sandbox.http_api import json_object as _json_object
from services.sandbox.http_api import refuse as _refuse
from services.sandbox.http_api import seen_before
from services.sandbox.settings import SandboxSettings

CHANNEL = "efaktura"
RECEIPT_AFTER = 0.2
_LOOKUP_FIELDS = ("national_id", "phone", "email", "name", "postal_code")
# Negative receipts per fault: (reason, as a bank's would read).
_REJECTIONS = {
    "reject": "the recipient's bank refused the invoice",
    "bounce": "the recipient is no longer registered for eFaktura",
    "return": "the recipient is no longer registered for eFaktura",
}


def _reachable(ctx: SandboxContext, query: dict[str, str]) -> bool:
    phone = query.get("phone", "")
    answer = bool(phone) and phone[-1].isdigit() and int(phone[-1]) % 2 == 0
    # The most specific identifier's override wins.
    for field in ("email", "phone", "national_id"):
        if query.get(field):
            answer = ctx.reachable(CHANNEL, query[field], answer)
    return answer


def _claim_problem(body: dict[str, Any]) -> tuple[str, str] | None:
    if not isinstance(body.get("recipient_id"), str):
        return "invalid_recipient", "'recipient_id' is required (from /efaktura/v1/lookup)"
    if not isinstance(body.get("issuer_org"), str) or not orgnr.is_valid(body["issuer_org"]):
        return "invalid_issuer", "'issuer_org' must be a Norwegian organisation number"
    number = body.get("invoice_number")
    if not isinstance(number, str) or not 0 < len(number) <= 64:
        return "invalid_invoice_number", "'invoice_number' must be 1-64 characters"
    try:
        validate_kid(body.get("kid", ""))
    except InvalidKid as bad:
        return "invalid_kid", f"'kid': {bad.reason}"
    amount = body.get("amount_minor")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        return "invalid_amount", "'amount_minor' must be an integer in øre above zero"
    if body.get("currency") != "NOK":
        return "invalid_currency", "eFaktura carries NOK only"
    try:
        parse_iso_date(body.get("due_date", ""))
    except (TypeError, ValueError):
        return "invalid_due_date", "'due_date' must be YYYY-MM-DD"
    link = body.get("link")
    if not isinstance(link, str) or not link.startswith(("https://", "http://")):
        return "invalid_link", "'link' must be the invoice's URL"
    try:
        pdf = base64.b64decode(body.get("pdf_base64", ""), validate=True)
    except (binascii.Error, TypeError, ValueError):
        pdf = b""
    if not pdf.startswith(b"%PDF-"):
        return "invalid_document", "'pdf_base64' must be a PDF, base64-encoded"
    return None


def setup(app: web.Application, ctx: SandboxContext, settings: SandboxSettings) -> None:
    inbox = ctx.inbox(CHANNEL)
    # The recipient ids the directory gave out (every send is preceded by its lookup), kept across
    # restarts in the records: a retried send after one still finds its recipient.
    registered = {
        r["id"] for r in inbox.records() if r.get("result") == "lookup" and r.get("reachable") is True
    }

    async def lookup(request: web.Request) -> web.Response:
        if not _authorized(request):
            return _refuse(401, "unauthorized", "Authorization: Bearer <api key> is required")
        body = await _json_object(request)
        if body is None:
            return _refuse(400, "invalid_request", "the body must be a JSON object")
        if any(not isinstance(body.get(f, ""), str) for f in _LOOKUP_FIELDS) or not body.get("name"):
            return _refuse(400, "invalid_request", f"'name' and optional {_LOOKUP_FIELDS[:3]} as strings")
        query = {f: body[f].strip() for f in _LOOKUP_FIELDS if body.get(f)}
        if not _reachable(ctx, query):
            inbox.record("", "lookup", reachable=False)
            return web.json_response({"reachable": False})
        identity = query.get("national_id") or query.get("phone") or query.get("email", "")
        recipient_id = "efa-" + hashlib.sha256(identity.encode()).hexdigest()[:20]
        registered.add(recipient_id)
        inbox.record("", "lookup", reachable=True, id=recipient_id)
        return web.json_response({"reachable": True, "recipient_id": recipient_id, "accepts_all": True})

    async def deliver(request: web.Request) -> web.Response:
        if not _authorized(request):
            return _refuse(401, "unauthorized", "Authorization: Bearer <api key> is required")
        key = request.headers.get("Idempotency-Key", "")
        if not _KEY.fullmatch(key):
            return _refuse(400, "invalid_idempotency_key", "Idempotency-Key: 1-128 of [A-Za-z0-9._:-]")
        body = await _json_object(request)
        if body is None:
            inbox.record(key, "refused", error="invalid_request")
            return _refuse(400, "invalid_request", "the body must be a JSON object")
        problem = _claim_problem(body)
        if problem is not None:
            inbox.record(key, "refused", error=problem[0])
            return _refuse(400, *problem)
        digest = _digest(body)
        replay = seen_before(inbox, key, digest, "invoice", {"id": "{id}"})
        if replay is not None:
            return replay

        fault = ctx.faults.take(CHANNEL)
        outcome = fault.outcome if fault else None
        if outcome == "fail" or body["recipient_id"] not in registered:
            inbox.record(key, "refused", error="unknown_recipient", fault=outcome)
            return _refuse(404, "unknown_recipient", "no eFaktura receiver has this id")
        if outcome == "error":
            inbox.record(key, "refused", error="unavailable", fault=outcome)
            return _refuse(503, "unavailable", "the eFaktura service is busy: try again later")

        invoice_id = f"efa-inv-{new_id()}"
        claim = {k: v for k, v in body.items() if k != "pdf_base64"}
        inbox.keep(f"{key}.pdf", base64.b64decode(body["pdf_base64"]))
        inbox.keep(f"{key}.json", json.dumps({"id": invoice_id, **claim}, ensure_ascii=False).encode())
        inbox.record(key, "accepted", id=invoice_id, digest=digest, fault=outcome)

        delay = fault.seconds if fault is not None and outcome == "delay" else RECEIPT_AFTER
        reason = _REJECTIONS.get(outcome or "", "")
        receipt = {
            "event_id": new_id(),
            "id": invoice_id,
            "delivery_id": key,
            "status": "rejected" if reason else "delivered",
            "reason": reason,
            "at": isoformat_utc(ctx.now() + timedelta(seconds=delay)),
        }
        ctx.callbacks.post(CHANNEL, receipt, delay=delay)
        if not reason and outcome != "unopened":
            # The customer opens the invoice from the online bank: its link to the invoice page.
            ctx.read_later(body["link"])
        return web.json_response({"id": invoice_id}, status=202)

    app.router.add_post("/efaktura/v1/lookup", lookup)
    app.router.add_post("/efaktura/v1/invoices", deliver)
