"""The Peppol access point and participant registry (PROTOCOLS.md, provider `peppol`, channel `ehf`):
`GET /peppol/v1/participants/<scheme>:<id>`, `POST /peppol/v1/documents` (UBL XML), and the
delivery receipt (or the receiver's rejection) by webhook.

The registry's default: every Norwegian (0192) or Swedish (0007) organisation number is registered
unless it ends in 7, 8 or 9; `POST /control/registry` overrides it per participant.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

from aiohttp import web
from lxml import etree

from services.common.clock import isoformat_utc
from services.common.ids import new_id
from services.sandbox.context import SandboxContext
from services.sandbox.http_api import KEY as _KEY
from services.sandbox.http_api import bearer as _authorized
from services.sandbox.http_api import refuse as _refuse
from services.sandbox.http_api import seen_before
from services.sandbox.settings import SandboxSettings

CHANNEL = "ehf"
PROVIDER = "peppol"
RECEIPT_AFTER = 0.2
DOCUMENT_LIMIT = 32 * 1024 * 1024
_PARTICIPANT = re.compile(r"(?:0192:[0-9]{9}|0007:[0-9]{10})")
_UBL = "urn:oasis:names:specification:ubl:schema:xsd:"
_ROOTS = {f"{{{_UBL}Invoice-2}}Invoice", f"{{{_UBL}CreditNote-2}}CreditNote"}
_REJECTION = "Receiver could not process the invoice (MLR RE: business rules of the receiver)"


def registered_by_default(participant: str) -> bool:
    """The sandbox registry's rule: registered unless the organisation number ends in 7, 8 or 9."""
    return not participant.endswith(("7", "8", "9"))


def _document_problem(body: bytes) -> str | None:
    """Why `body` is not a UBL invoice or credit note (well-formed, the right root), if it is not."""
    # No DTDs, no entities, no network: a document is data, never instructions to the parser.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        return f"not well-formed XML: {exc}"
    if root.tag not in _ROOTS:
        return f"the root element is {root.tag}, not a UBL 2.1 Invoice or CreditNote"
    return None


def setup(app: web.Application, ctx: SandboxContext, settings: SandboxSettings) -> None:
    inbox = ctx.inbox(CHANNEL)

    def registered(participant: str) -> bool:
        return ctx.reachable(CHANNEL, participant, registered_by_default(participant))

    async def participant(request: web.Request) -> web.Response:
        if not _authorized(request):
            return _refuse(401, "unauthorized", "Authorization: Bearer <api key> is required")
        ident = request.match_info["participant"]
        if not _PARTICIPANT.fullmatch(ident):
            return _refuse(400, "invalid_participant", "expected 0192:<9 digits> or 0007:<10 digits>")
        if not registered(ident):
            return _refuse(404, "unknown_participant", "not registered in the Peppol directory")
        return web.json_response({"participant": ident, "documents": ["invoice", "creditnote"]})

    async def send(request: web.Request) -> web.Response:
        if not _authorized(request):
            return _refuse(401, "unauthorized", "Authorization: Bearer <api key> is required")
        key = request.headers.get("Idempotency-Key", "")
        if not _KEY.fullmatch(key):
            return _refuse(400, "invalid_idempotency_key", "Idempotency-Key: 1-128 of [A-Za-z0-9._:-]")
        sender = request.headers.get("X-Peppol-Sender", "")
        receiver = request.headers.get("X-Peppol-Receiver", "")
        if not _PARTICIPANT.fullmatch(sender) or not _PARTICIPANT.fullmatch(receiver):
            inbox.record(key, "refused", error="invalid_participant")
            return _refuse(
                400, "invalid_participant", "X-Peppol-Sender and X-Peppol-Receiver: 0192:<org> or 0007:<org>"
            )
        body = await request.read()
        if len(body) > DOCUMENT_LIMIT:
            inbox.record(key, "refused", error="document_too_large")
            return _refuse(400, "document_too_large", f"at most {DOCUMENT_LIMIT} bytes")
        problem = _document_problem(body)
        if problem is not None:
            inbox.record(key, "refused", error="invalid_document")
            return _refuse(400, "invalid_document", problem)

        digest = hashlib.sha256(f"{sender}\n{receiver}\n".encode() + body).hexdigest()
        replay = seen_before(inbox, key, digest, "document", {"id": "{id}", "status": "queued"})
        if replay is not None:
            return replay

        fault = ctx.faults.take(CHANNEL)
        outcome = fault.outcome if fault else None
        if outcome == "fail":
            inbox.record(key, "refused", error="receiver_refused", fault=outcome)
            return _refuse(400, "receiver_refused", "the receiver's access point refused the document")
        if outcome == "error":
            inbox.record(key, "refused", error="unavailable", fault=outcome)
            return _refuse(503, "unavailable", "the access point is busy: try again later")
        if not registered(receiver):
            inbox.record(key, "refused", error="unknown_participant", receiver=receiver)
            return _refuse(
                404, "unknown_participant", f"{receiver} is not registered in the Peppol directory"
            )

        document_id = f"ap-{new_id()}"
        file = inbox.keep(f"{key}.xml", body)
        inbox.record(
            key,
            "accepted",
            id=document_id,
            digest=digest,
            sender=sender,
            receiver=receiver,
            file=file.name,
            fault=outcome,
        )
        delay = fault.seconds if fault and outcome == "delay" else RECEIPT_AFTER
        rejected = outcome in ("reject", "bounce", "return")
        ctx.callbacks.post(
            PROVIDER,
            {
                "event_id": new_id(),
                "id": document_id,
                "delivery_id": key,
                "status": "rejected" if rejected else "delivered",
                "reason": _REJECTION if rejected else "",
                "at": isoformat_utc(ctx.now() + timedelta(seconds=delay)),
            },
            delay=delay,
        )
        return web.json_response({"id": document_id, "status": "queued"}, status=202)

    app.router.add_get("/peppol/v1/participants/{participant}", participant)
    app.router.add_post("/peppol/v1/documents", send)
