"""The SMS provider (PROTOCOLS.md, `sms`): `POST /sms/v1/messages`, a delivery report by webhook, and
the simulated customer tapping the link in the text."""

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
from services.sandbox.http_api import bearer as _authorized
from services.sandbox.http_api import digest as _digest
from services.sandbox.http_api import json_object as _json_object
from services.sandbox.http_api import refuse as _refuse
from services.sandbox.http_api import seen_before
from services.sandbox.settings import SandboxSettings

CHANNEL = "sms"
RECEIPT_AFTER = 0.2
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_SENDER = re.compile(r"[A-Za-z0-9]{1,11}")
TEXT_LIMIT = 1600


def _problem(body: dict[str, Any]) -> tuple[str, str] | None:
    to, sender, text = body.get("to"), body.get("from"), body.get("text")
    if not isinstance(to, str) or not _E164.fullmatch(to):
        return "invalid_recipient", "'to' must be a phone number in E.164 (+4791234567)"
    if not isinstance(sender, str) or not _SENDER.fullmatch(sender):
        return "invalid_sender", "'from' must be 1-11 letters and digits"
    if not isinstance(text, str) or not text.strip() or len(text) > TEXT_LIMIT:
        return "invalid_text", f"'text' must be 1-{TEXT_LIMIT} characters"
    if not isinstance(body.get("reference", ""), str):
        return "invalid_reference", "'reference' must be a string"
    return None


def setup(app: web.Application, ctx: SandboxContext, settings: SandboxSettings) -> None:
    inbox = ctx.inbox(CHANNEL)

    async def send(request: web.Request) -> web.Response:
        if not _authorized(request):
            return _refuse(401, "unauthorized", "Authorization: Bearer <api key> is required")
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
        digest = _digest(body)
        replay = seen_before(inbox, key, digest, "message", {"id": "{id}", "status": "queued"})
        if replay is not None:
            return replay

        fault = ctx.faults.take(CHANNEL)
        outcome = fault.outcome if fault else None
        if outcome == "fail":
            inbox.record(key, "refused", error="invalid_recipient", fault=outcome)
            return _refuse(400, "invalid_recipient", "the number is not in service")
        if outcome == "error":
            inbox.record(key, "refused", error="unavailable", fault=outcome)
            return _refuse(503, "unavailable", "the SMS gateway is busy: try again later")

        message_id = f"sms-{new_id()}"
        delivery_id = body.get("reference") or key
        inbox.keep(f"{key}.json", json.dumps({"id": message_id, **body}, ensure_ascii=False).encode())
        inbox.record(key, "accepted", id=message_id, digest=digest, reference=delivery_id, fault=outcome)

        delay = fault.seconds if fault and outcome == "delay" else RECEIPT_AFTER
        status, reason = "delivered", ""
        if outcome in ("bounce", "return"):
            status, reason = "failed", "unreachable: the number is not in service"
        elif outcome == "reject":
            status, reason = "failed", "rejected by the network"
        receipt = {
            "event_id": new_id(),
            "id": message_id,
            "delivery_id": delivery_id,
            "status": status,
            "reason": reason,
            "at": isoformat_utc(ctx.now() + timedelta(seconds=delay)),
        }
        ctx.callbacks.post(CHANNEL, receipt, delay=delay)
        if status == "delivered" and outcome != "unopened":
            ctx.read_later(body["text"])
        return web.json_response({"id": message_id, "status": "queued"}, status=202)

    app.router.add_post("/sms/v1/messages", send)
