"""The customer's side: one page per invoice at its signed link.

    GET  /i/{token}            the invoice (the open is recorded through the dispatcher)
    GET  /i/{token}/live       server-sent events: the page's changing parts as they change
    GET  /i/{token}/pdf        the newest PDF
    GET  /i/{token}/qr.svg     the QR code of the page's link
    POST /i/{token}/message    a message to customer service
    POST /i/{token}/dispute    "I dispute this": dunning holds the invoice; the dispute is on the thread
    POST /i/{token}/channel    future invoices by AvtaleGiro, eFaktura, e-mail or SMS

A link that is not ours is 404 (saying nothing of which invoices exist), an expired one 410. The
link is the customer's credential; the page opens a session (an HttpOnly, SameSite=Strict cookie,
Secure on https) whose CSRF token every form carries.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable
from datetime import date, timedelta
from functools import lru_cache
from io import BytesIO
from typing import Any, TypeVar
from urllib.parse import urlsplit

import segno
from fordring.ledger.v1 import ledger_pb2 as ledger_pb
from fordring.ledger.v1 import notes_pb2 as notes_pb
from opentelemetry import metrics, trace
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from services.common import attributes as attr
from services.common.errors import NotFound, Unavailable
from services.common.links import LinkToken, read_token
from services.portal.clients import Refused
from services.portal.customer.live import LiveHub
from services.portal.customer.view import CHANNELS, CUSTOMER_HISTORY, InvoicePage, invoice_page, notes_of
from services.portal.i18n import Translator, normalise, pick_language
from services.portal.store import CustomerSession
from services.portal.web import Portal

log = logging.getLogger(__name__)
T = TypeVar("T")
_meter = metrics.get_meter("fordring.portal")
PAGES = _meter.create_counter(
    "fordring_invoice_pages",
    description="Invoice pages asked for, by result (shown, not_found, expired, ...)",
)
ACTIONS = _meter.create_counter(
    "fordring_customer_actions", description="What customers did on invoice pages (message, dispute, channel)"
)

MAX_FORM_BYTES = 32 * 1024
MAX_MESSAGE = 4000
# A live page hears something at least this often (a comment line), so proxies keep the stream open
# and a page whose reader left is noticed.
HEARTBEAT_SECONDS = 20.0
DONE = frozenset({"message", "dispute", "channel"})
PROBLEMS = frozenset({"empty", "too_long", "refused"})
_CONSENT_CHANNEL = {
    "email": ledger_pb.CHANNEL_EMAIL,
    "sms": ledger_pb.CHANNEL_SMS,
    "efaktura": ledger_pb.CHANNEL_EFAKTURA,
    "avtalegiro": ledger_pb.CHANNEL_AVTALEGIRO,
}


class Problem(Exception):
    """Answer with the error page: `kind` names its words (not_found, expired, unavailable, forbidden)."""

    def __init__(self, kind: str, status: int) -> None:
        super().__init__(kind)
        self.kind = kind
        self.status = status


def cookie_name(invoice_id: str, secure: bool) -> str:
    """One session cookie per invoice (a customer may have two invoices open); __Host-: only this
    host, path /, Secure."""
    suffix = hashlib.sha256(invoice_id.encode()).hexdigest()[:16]
    return f"{'__Host-' if secure else ''}fordring-{suffix}"


@lru_cache(maxsize=1024)
def qr_svg(text: str) -> bytes:
    """The QR code of the page's address (error correction M, mask 0: the mask search is slow)."""
    out = BytesIO()
    segno.make(text, error="m", mask=0, micro=False).save(out, kind="svg", scale=4, border=4, xmldecl=False)
    return out.getvalue()


class CustomerPages:
    def __init__(self, portal: Portal) -> None:
        self.p = portal
        self.hub = LiveHub(portal.clients, limit=portal.settings.live_max)

    # --- reading the link and the session -------------------------------------------------------

    def _link(self, request: Request) -> LinkToken:
        found = read_token(str(request.path_params["token"]), self.p.settings.link_secret)
        if found is None:
            raise Problem("not_found", 404)
        trace.get_current_span().set_attribute(attr.INVOICE_ID, found.invoice_id)
        if found.expired(self.p.clock.now()):
            raise Problem("expired", 410)
        return found

    async def _session(self, request: Request, link: LinkToken) -> CustomerSession | None:
        name = cookie_name(link.invoice_id, self.p.settings.secure_cookies)
        return await self.p.store.customer_session(
            request.cookies.get(name, ""), link.invoice_id, now=self.p.clock.now()
        )

    async def _required_session(self, request: Request) -> tuple[LinkToken, CustomerSession]:
        link = self._link(request)
        session = await self._session(request, link)
        if session is None:
            raise Problem("forbidden", 403)
        return link, session

    async def _invoice(self, tenant_id: str, link: LinkToken) -> ledger_pb.Invoice:
        invoice = await self.p.clients.ledger.invoice(tenant_id, link.invoice_id)
        if invoice.id != link.invoice_id:
            raise Problem("not_found", 404)
        if (
            link.expires is None
            and date.fromisoformat(invoice.issue_date) + timedelta(days=self.p.settings.legacy_link_days)
            < self.p.clock.now().date()
        ):
            raise Problem("expired", 410)
        return invoice

    def _translator(self, request: Request, *languages: str) -> Translator:
        return Translator(
            pick_language(
                request.headers.get("accept-language", ""), request.query_params.get("lang", ""), *languages
            )
        )

    # --- what the page shows --------------------------------------------------------------------

    async def content(self, tenant_id: str, invoice: ledger_pb.Invoice, t: Translator) -> InvoicePage:
        c = self.p.clients
        customer, profile, history, deliveries, notes = await asyncio.gather(
            _optional(c.ledger.customer(tenant_id, invoice.customer_id), None),
            _optional(c.ledger.creditor_profile(tenant_id), None),
            c.ledger.history(tenant_id, invoice.id),
            _optional(c.deliveries(tenant_id, invoice.id), []),
            c.notes(tenant_id, invoice.id),
        )
        return invoice_page(invoice, customer, profile, history, deliveries, notes_of(notes), t)

    def _fragments(self, request: Request, page: InvoicePage, link: str, t: Translator) -> dict[str, str]:
        context = {"page": page, "link": link, "t": t, "lang": t.language, "request": request}
        env = self.p.templates
        return {
            part: env.get_template(f"customer/_{part}.html").render(context)
            for part in ("summary", "history", "thread")
        }

    # --- the routes -----------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        link = self._link(request)
        session = await self._session(request, link)
        try:
            tenant_id = await self.p.clients.record_open(link.invoice_id)
        except Unavailable:
            if session is None:
                raise
            tenant_id = session.tenant_id  # the open is a nicety; the page still shows
        if not tenant_id or (session is not None and session.tenant_id != tenant_id):
            raise Problem("not_found", 404)
        trace.get_current_span().set_attribute(attr.TENANT_ID, tenant_id)
        invoice = await self._invoice(tenant_id, link)
        language = invoice.language
        if not normalise(language):  # the invoice says none: the customer's, if the ledger has it
            customer = await _optional(self.p.clients.ledger.customer(tenant_id, invoice.customer_id), None)
            language = customer.language if customer is not None else ""
        t = self._translator(request, language)
        content = await self.content(tenant_id, invoice, t)
        if session is None:
            session = await self.p.store.open_customer_session(
                tenant_id, link.invoice_id, now=self.p.clock.now(), hours=self.p.settings.session_hours
            )
        done = request.query_params.get("done", "")
        problem = request.query_params.get("problem", "")
        base = f"/i/{request.path_params['token']}"
        response = self.p.page(
            request,
            "customer/invoice.html",
            {
                "page": content,
                "link": base,
                "csrf": session.csrf,
                "done": done if done in DONE else "",
                "problem": problem if problem in PROBLEMS else "",
                "channels": CHANNELS,
                "fragments": self._fragments(request, content, base, t),
            },
            language=t.language,
        )
        PAGES.add(1, {"result": "shown"})
        response.set_cookie(
            cookie_name(link.invoice_id, self.p.settings.secure_cookies),
            session.id,
            max_age=int(self.p.settings.session_hours * 3600),
            path="/",
            secure=self.p.settings.secure_cookies,
            httponly=True,
            samesite="strict",
        )
        return response

    async def live(self, request: Request) -> Response:
        _, session = await self._required_session(request)
        if self.hub.full:
            return Response("busy\n", status_code=503, headers={"Retry-After": "30"}, media_type="text/plain")
        # What the page shows: the version it was loaded with, or the last one this stream sent
        # before the browser reconnected (EventSource sends its id back).
        shown = max(
            _number(request.query_params.get("v", "")), _number(request.headers.get("last-event-id", ""))
        )
        t = self._translator(request)
        base = f"/i/{request.path_params['token']}"
        return StreamingResponse(
            self._events(request, session, base, shown, t),
            media_type="text/event-stream",
            headers={"X-Accel-Buffering": "no"},
        )

    async def _events(
        self, request: Request, session: CustomerSession, base: str, shown: int, t: Translator
    ) -> AsyncIterator[str]:
        yield "retry: 3000\n\n"
        stopping = self.p.stopping
        async with self.hub.subscribe(session.tenant_id, session.invoice_id) as subscriber:
            while not stopping.is_set():
                update = await subscriber.next(HEARTBEAT_SECONDS, stopping)
                if update is None:
                    if not stopping.is_set():
                        yield ": still here\n\n"
                    continue
                version = update.invoice.version
                if version <= shown:
                    continue
                shown = version

                async def render(update: ledger_pb.WatchInvoiceResponse = update) -> object:
                    page = await self.content(session.tenant_id, update.invoice, t)
                    fragments = self._fragments(request, page, base, t)
                    return json.dumps({"version": page.version, "said": _said(update, t), **fragments})

                try:
                    data = await self.hub.rendered((session.invoice_id, version, t.language, base), render)
                except (NotFound, Unavailable) as exc:
                    log.info("live page of %s: %s", session.invoice_id, exc)
                    continue
                yield f"event: invoice\nid: {version}\ndata: {data}\n\n"

    async def pdf(self, request: Request) -> Response:
        link, session = await self._required_session(request)
        name, data = await self.p.clients.latest_pdf(session.tenant_id, link.invoice_id)
        safe = "".join(ch for ch in name if ch.isalnum() or ch in "-_.") or "invoice.pdf"
        return Response(
            data,
            media_type="application/pdf",
            headers={
                "Content-Disposition": f'inline; filename="{safe}"',
                "Cache-Control": "private, no-store",
            },
        )

    async def qr(self, request: Request) -> Response:
        self._link(request)
        address = f"{self.p.settings.public_url.rstrip('/')}/i/{request.path_params['token']}"
        return Response(qr_svg(address), media_type="image/svg+xml")

    async def message(self, request: Request) -> Response:
        link, session, form = await self._form(request)
        text = str(form.get("text", "")).strip()
        base = f"/i/{request.path_params['token']}"
        if not text:
            return _back(base, problem="empty", anchor="write")
        if len(text) > MAX_MESSAGE:
            return _back(base, problem="too_long", anchor="write")
        invoice = await self._invoice(session.tenant_id, link)
        try:
            await self._note(session, invoice, notes_pb.NOTE_KIND_MESSAGE, text)
        except Refused:
            return _back(base, problem="refused", anchor="write")
        await self._audit(session, "customer.message")
        return _back(base, done="message", anchor="thread")

    async def dispute(self, request: Request) -> Response:
        link, session, form = await self._form(request)
        reason = str(form.get("reason", "")).strip()
        base = f"/i/{request.path_params['token']}"
        if not reason:
            return _back(base, problem="empty", anchor="dispute")
        if len(reason) > MAX_MESSAGE:
            return _back(base, problem="too_long", anchor="dispute")
        invoice = await self._invoice(session.tenant_id, link)
        # Dunning holds the invoice first: the customer is not reminded while customer service looks.
        await self.p.clients.dispute(
            session.tenant_id, invoice.id, f"disputed by the customer: {reason}"[:500]
        )
        try:
            await self._note(session, invoice, notes_pb.NOTE_KIND_DISPUTE, reason)
        except Refused:
            return _back(base, problem="refused", anchor="dispute")
        await self._audit(session, "customer.dispute")
        return _back(base, done="dispute", anchor="thread")

    async def channel(self, request: Request) -> Response:
        link, session, form = await self._form(request)
        wanted = str(form.get("channel", ""))
        base = f"/i/{request.path_params['token']}"
        if wanted not in _CONSENT_CHANNEL:
            return _back(base, problem="refused", anchor="channels")
        invoice = await self._invoice(session.tenant_id, link)
        await self.p.clients.record_consent(session.tenant_id, invoice.customer_id, _CONSENT_CHANNEL[wanted])
        await self._audit(session, "customer.channel", channel=wanted)
        return _back(base, done="channel", anchor="channels")

    # --- forms ----------------------------------------------------------------------------------

    async def _form(self, request: Request) -> tuple[LinkToken, CustomerSession, dict[str, Any]]:
        """The form, when it comes with this page's session and CSRF token (else 403)."""
        link, session = await self._required_session(request)
        # A browser names the site a form came from: it must be ours. ("null": a browser that will not
        # say; the session's CSRF token and its SameSite=Strict cookie still stand.)
        origin = request.headers.get("origin", "")
        if origin and origin != "null" and origin not in self._origins(request):
            raise Problem("forbidden", 403)
        if int(request.headers.get("content-length") or MAX_FORM_BYTES + 1) > MAX_FORM_BYTES:
            raise Problem("forbidden", 413)
        form = await request.form(max_files=0, max_fields=8)
        token = str(form.get("csrf", ""))
        if not hmac.compare_digest(token.encode(), session.csrf.encode()):
            raise Problem("forbidden", 403)
        return link, session, dict(form)

    def _origins(self, request: Request) -> set[str]:
        public = urlsplit(self.p.settings.public_url)
        return {f"{public.scheme}://{public.netloc}", f"{request.url.scheme}://{request.url.netloc}"}

    async def _note(
        self,
        session: CustomerSession,
        invoice: ledger_pb.Invoice,
        kind: notes_pb.NoteKind.ValueType,
        text: str,
    ) -> None:
        # One note per session and text: a double click or a resent form adds it once.
        key = hashlib.sha256(f"{session.id}:{kind}:{text}".encode()).hexdigest()[:40]
        await self.p.clients.add_note(
            session.tenant_id,
            notes_pb.AddInvoiceNoteRequest(
                invoice_id=invoice.id,
                author=notes_pb.NOTE_AUTHOR_CUSTOMER,
                author_name=invoice.customer_name,
                kind=kind,
                text=text,
                idempotency_key=f"portal:{key}",
            ),
        )

    async def _audit(self, session: CustomerSession, action: str, **details: Any) -> None:
        ACTIONS.add(1, {"action": action.removeprefix("customer.")})
        await self.p.store.audit(
            tenant_id=session.tenant_id,
            actor="customer",
            action=action,
            subject=session.invoice_id,
            now=self.p.clock.now(),
            **details,
        )


def _said(update: ledger_pb.WatchInvoiceResponse, t: Translator) -> str:
    """What a screen reader announces about the change."""
    key = CUSTOMER_HISTORY.get(update.change.type)
    if (
        update.change.type == "payment_applied"
        and update.change.status_after == ledger_pb.INVOICE_STATUS_PART_PAID
    ):
        key = "history.part_payment"
    return t(key) if key else t("live.updated")


def _number(text: str) -> int:
    return int(text) if text.isdigit() and len(text) < 19 else 0


def _back(base: str, *, done: str = "", problem: str = "", anchor: str = "") -> RedirectResponse:
    query = f"?done={done}" if done else f"?problem={problem}" if problem else ""
    return RedirectResponse(f"{base}{query}#{anchor}" if anchor else f"{base}{query}", status_code=303)


async def _optional(call: Awaitable[T], default: T) -> T:
    """A read the page can do without (it says less, rather than fail)."""
    try:
        return await call
    except (NotFound, Unavailable) as exc:
        log.info("invoice page without a part: %s", exc)
        return default


def customer_routes(portal: Portal) -> list[BaseRoute]:
    pages = CustomerPages(portal)

    def guarded(handler: Any) -> Any:
        async def run(request: Request) -> Response:
            try:
                response: Response = await handler(request)
            except Problem as problem:
                PAGES.add(1, {"result": problem.kind})
                return portal.page(request, "error.html", {"problem": problem.kind}, status=problem.status)
            except NotFound:
                PAGES.add(1, {"result": "not_found"})
                return portal.page(request, "error.html", {"problem": "not_found"}, status=404)
            except Unavailable as exc:
                PAGES.add(1, {"result": "unavailable"})
                log.warning("invoice page unavailable: %s", exc)
                response = portal.page(request, "error.html", {"problem": "unavailable"}, status=503)
                response.headers["Retry-After"] = "30"
            return response

        return run

    return [
        Route("/i/{token}", guarded(pages.page), methods=["GET"]),
        Route("/i/{token}/live", guarded(pages.live), methods=["GET"]),
        Route("/i/{token}/pdf", guarded(pages.pdf), methods=["GET"]),
        Route("/i/{token}/qr.svg", guarded(pages.qr), methods=["GET"]),
        Route("/i/{token}/message", guarded(pages.message), methods=["POST"]),
        Route("/i/{token}/dispute", guarded(pages.dispute), methods=["POST"]),
        Route("/i/{token}/channel", guarded(pages.channel), methods=["POST"]),
    ]
