"""The portal's HTTP application: what every page shares (templates in the reader's language, the
security headers, tracing, error pages). The customer's invoice pages (customer/) and the operator
console (console/) each add their routes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from opentelemetry import trace
from opentelemetry.propagate import extract
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from services.common.clock import Clock
from services.portal.clients import Clients
from services.portal.i18n import LANGUAGES, Translator, pick_language
from services.portal.settings import PortalSettings
from services.portal.store import PortalStore

HERE = Path(__file__).parent
tracer = trace.get_tracer(__name__)

# No inline script or style anywhere: the one script and the stylesheet come from /static.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # The link is the customer's credential: it never leaves in a Referer to another site, while our own
    # form posts still carry their Origin (no-referrer would make it "null").
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class Portal:
    """What the pages of both sides work with."""

    settings: PortalSettings
    store: PortalStore
    clients: Clients
    clock: Clock
    # Set when the replica stops: open live streams end.
    stopping: asyncio.Event
    templates: Environment = field(init=False)

    def __post_init__(self) -> None:
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True),
            enable_async=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def page(
        self,
        request: Request,
        template: str,
        context: dict[str, Any],
        *,
        status: int = 200,
        language: str = "",
    ) -> HTMLResponse:
        lang = language or pick_language(request.headers.get("accept-language", ""))
        html = self.templates.get_template(template).render(
            {"lang": lang, "t": Translator(lang), "languages": LANGUAGES, "request": request, **context}
        )
        return HTMLResponse(html, status_code=status)


def security_headers(app: Asgi) -> Asgi:
    """Every answer carries the security headers; none but the static files may be cached."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"public, max-age=3600" if static else b"no-store"))
                message["headers"] = headers
            await send(message)

        await app(scope, receive, send_with_headers)

    return wrapped


def traced_requests(app: Asgi) -> Asgi:
    """One server span per request (joining the caller's `traceparent`), named by its route."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        with tracer.start_as_current_span(
            f"{scope['method']} {_route_name(str(scope['path']))}",
            context=extract(carrier),
            kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": scope["method"]},
        ) as span:

            async def send_status(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", int(message["status"]))
                await send(message)

            await app(scope, receive, send_status)

    return wrapped


def _route_name(path: str) -> str:
    """The path without its secrets (an invoice link's token never goes into a span)."""
    parts = path.split("/")
    if len(parts) > 2 and parts[1] == "i":
        parts[2] = "{token}"
    return "/".join(parts)


def create_web(portal: Portal, sections: list[BaseRoute]) -> Asgi:
    async def home(request: Request) -> Response:
        return portal.page(request, "home.html", {})

    async def not_found(request: Request, _exc: Exception) -> Response:
        return portal.page(request, "error.html", {"problem": "not_found"}, status=404)

    async def server_error(request: Request, _exc: Exception) -> Response:
        return portal.page(request, "error.html", {"problem": "unavailable"}, status=503)

    routes: list[BaseRoute] = [
        Route("/", home),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
        *sections,
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 500: server_error})
    return traced_requests(security_headers(app))
