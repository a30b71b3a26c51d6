"""The console's routes, under /console, and the role each needs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from services.portal.console import dashboard, dunning, login, pages, queues
from services.portal.console.accounts import Accounts, Role
from services.portal.console.guard import Console, action, page
from services.portal.console.sessions import ConsoleSessions
from services.portal.web import Portal


def console_routes(portal: Portal) -> list[BaseRoute]:
    console = Console(
        portal,
        Accounts(portal.store.db),
        ConsoleSessions(portal.store.db, hours=portal.settings.console_session_hours),
    )

    def view(
        handler: Callable[..., Awaitable[Response]], role: Role = "customer_service"
    ) -> Callable[[Request], Awaitable[Response]]:
        return page(console, partial(handler, console), role)

    def post(
        handler: Callable[..., Awaitable[Response]], role: Role = "customer_service"
    ) -> Callable[[Request], Awaitable[Response]]:
        return action(console, partial(handler, console), role)

    async def login_page(request: Request) -> Response:
        return await login.login_form(console, request)

    async def login_post(request: Request) -> Response:
        return await login.login(console, request)

    async def root(request: Request) -> Response:
        del request
        return RedirectResponse("/console/", status_code=307)

    return [
        Route("/console", root),
        Route("/console/login", login_page, methods=["GET"]),
        Route("/console/login", login_post, methods=["POST"]),
        Route("/console/logout", post(login.logout), methods=["POST"]),
        Route("/console/tenant", post(login.switch_tenant), methods=["POST"]),
        Route("/console/", view(dashboard.dashboard)),
        Route("/console/search", view(pages.search)),
        Route("/console/invoices/{invoice_id}", view(pages.invoice)),
        Route("/console/invoices/{invoice_id}/comment", post(queues.comment), methods=["POST"]),
        Route("/console/invoices/{invoice_id}/resend", post(queues.resend), methods=["POST"]),
        Route("/console/invoices/{invoice_id}/due-date", post(queues.move_due_date), methods=["POST"]),
        Route(
            "/console/invoices/{invoice_id}/resolve-dispute",
            post(queues.resolve_dispute, "operator"),
            methods=["POST"],
        ),
        Route("/console/customers/{customer_id}", view(pages.customer)),
        Route("/console/queues/deviations", view(queues.deviations)),
        Route("/console/queues/review", view(queues.review)),
        Route("/console/payments/{payment_id}/allocate", post(queues.allocate, "operator"), methods=["POST"]),
        Route("/console/queues/disputes", view(queues.disputes)),
        Route("/console/queues/flagged", view(queues.flagged)),
        Route("/console/queues/handoffs", view(queues.handoffs)),
        Route("/console/queues/handoffs/file", view(queues.collection_file, "operator")),
        Route("/console/dunning", view(dunning.policies)),
        Route("/console/dunning/simulate", post(dunning.simulate, "operator"), methods=["POST"]),
        Route("/console/dunning/policy", post(dunning.switch_on, "admin"), methods=["POST"]),
        Route("/console/audit", view(pages.audit_log, "admin")),
    ]
