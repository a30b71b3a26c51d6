"""The dispatcher's public port: provider webhooks and the invoice links customers follow.

- `POST /webhooks/<provider>`: a receipt, signed with the provider's secret. A missing or wrong
  signature, or one older than the tolerance, is refused (401) and changes nothing; a body that is
  not a receipt of that provider is refused (400); a receipt applied before (a replay) is answered
  409 and changes nothing.
- `GET /i/<token>`: the invoice page link printed on e-mails, SMS and documents. A token that is not
  ours is 404 (and says nothing about which invoices exist). A valid one records the open and shows
  the invoice's page from the invoice hotel. (The portal takes these links over later.)
"""

from __future__ import annotations

import logging

from aiohttp import web
from opentelemetry import metrics

from services.common.errors import NotFound, Unavailable
from services.common.links import invoice_from_token
from services.common.webhooks import SIGNATURE_HEADER, BadSignature, verify
from services.dispatcher.adapters.base import BadReceipt
from services.dispatcher.adapters.renderer import RendererClient
from services.dispatcher.channels import Channels
from services.dispatcher.tracking import NotYetSent, Tracker

log = logging.getLogger(__name__)
_meter = metrics.get_meter("fordring.dispatcher")
WEBHOOKS = _meter.create_counter("fordring_webhooks", description="Provider webhooks by provider and result")
_MAX_BODY = 2 * 1024 * 1024
_NOT_FOUND = "<!doctype html><title>Not found</title><p>This invoice link is not valid.</p>"
_LATER = (
    "<!doctype html><title>Try again</title>"
    "<p>The invoice cannot be shown right now. Please try again shortly.</p>"
)


def public_app(
    channels: Channels, tracker: Tracker, renderer: RendererClient, *, link_secret: str
) -> web.Application:
    app = web.Application(client_max_size=_MAX_BODY)

    async def webhook(request: web.Request) -> web.Response:
        provider = request.match_info["provider"]
        adapter = channels.by_provider.get(provider)
        secret = channels.secrets.get(provider, "")
        if adapter is None or not secret:
            WEBHOOKS.add(1, {"provider": "unknown", "result": "unknown_provider"})
            return web.json_response({"error": "unknown_provider"}, status=404)
        body = await request.read()
        try:
            verify(body, request.headers.get(SIGNATURE_HEADER), secret)
        except BadSignature as exc:
            WEBHOOKS.add(1, {"provider": provider, "result": "bad_signature"})
            log.warning("dispatcher: refused a %s webhook: %s", provider, exc)
            return web.json_response({"error": "bad_signature", "message": str(exc)}, status=401)
        try:
            receipts = adapter.parse_receipts(body, request.content_type)
        except BadReceipt as exc:
            WEBHOOKS.add(1, {"provider": provider, "result": "bad_receipt"})
            return web.json_response({"error": "bad_receipt", "message": str(exc)}, status=400)
        try:
            outcome = await tracker.apply_receipts(provider, receipts)
        except NotYetSent:
            WEBHOOKS.add(1, {"provider": provider, "result": "too_early"})
            return web.json_response(
                {"error": "too_early", "message": "the send is still being recorded; post it again"},
                status=503,
                headers={"Retry-After": "1"},
            )
        if receipts and outcome.replayed == len(receipts):
            WEBHOOKS.add(1, {"provider": provider, "result": "replayed"})
            return web.json_response(
                {"error": "replayed", "message": "this receipt was applied before"}, status=409
            )
        WEBHOOKS.add(1, {"provider": provider, "result": "applied"})
        return web.json_response(
            {"applied": outcome.applied, "replayed": outcome.replayed, "unknown": outcome.unknown}
        )

    async def invoice_page(request: web.Request) -> web.Response:
        invoice_id = invoice_from_token(request.match_info["token"], link_secret)
        if invoice_id is None:
            return web.Response(text=_NOT_FOUND, content_type="text/html", status=404)
        try:
            delivery = await tracker.opened(invoice_id)
        except Exception:  # the open is a nicety; the customer still gets the page
            log.exception("dispatcher: could not record an open")
            delivery = None
        tenant_id = delivery["tenant_id"] if delivery else await tracker.tenant_of(invoice_id)
        if tenant_id is None:
            return web.Response(text=_NOT_FOUND, content_type="text/html", status=404)
        try:
            page = await renderer.latest_html(tenant_id, invoice_id)
        except NotFound:
            return web.Response(text=_NOT_FOUND, content_type="text/html", status=404)
        except Unavailable:
            return web.Response(
                text=_LATER, content_type="text/html", status=503, headers={"Retry-After": "30"}
            )
        return web.Response(
            body=page,
            content_type="text/html",
            charset="utf-8",
            headers={"Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer"},
        )

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app.router.add_post("/webhooks/{provider}", webhook)
    app.router.add_get("/i/{token}", invoice_page)
    app.router.add_get("/healthz", healthz)
    return app
