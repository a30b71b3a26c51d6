"""What every console page shares: the session cookie, the sign-in requirement, the role a page or
action needs, the CSRF token every form carries, and the audit record of every action."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.portal.console.accounts import Accounts, Role, allows
from services.portal.console.services import Services
from services.portal.console.sessions import ConsoleSession, ConsoleSessions
from services.portal.console.view import helpers
from services.portal.console.words import words_for
from services.portal.web import Portal

# `__Host-` cookies are Secure, for the whole host and for no other: used whenever served over https.
COOKIE_SECURE = "__Host-console"
COOKIE_PLAIN = "console"
LOGIN_COOKIE_SECURE = "__Host-console-login"
LOGIN_COOKIE_PLAIN = "console-login"

Page = Callable[[Request, "Staff"], Awaitable[Response]]
Action = Callable[[Request, "Staff", FormData], Awaitable[Response]]


def wall_now() -> datetime:
    """Sessions and login limits run on the real time (the sandbox clock may jump weeks ahead)."""
    return datetime.now(UTC)


def secure(request: Request, portal: Portal) -> bool:
    return portal.settings.secure_cookies or request.url.scheme == "https"


def set_cookie(
    response: Response, request: Request, portal: Portal, names: tuple[str, str], value: str, *, max_age: int
) -> None:
    https = secure(request, portal)
    response.set_cookie(
        names[0] if https else names[1],
        value,
        max_age=max_age,
        path="/",
        secure=https,
        httponly=True,
        samesite="strict",
    )


def cookie(request: Request, names: tuple[str, str]) -> str:
    return request.cookies.get(names[0]) or request.cookies.get(names[1]) or ""


@dataclass
class Console:
    portal: Portal
    accounts: Accounts
    sessions: ConsoleSessions

    def page(
        self, request: Request, template: str, context: dict[str, Any], *, status: int = 200
    ) -> Response:
        words = words_for(request)
        shared = {
            **helpers(),
            "nonce": lambda: secrets.token_urlsafe(12),
            "path": request.url.path,
            "t": words,
            "done": request.query_params.get("done", "")[:40],
            "failed": request.query_params.get("problem", "")[:40],
            "refused": request.query_params.get("refused", "")[:300],
        }
        return self.portal.page(
            request, f"console/{template}", {**shared, **context}, status=status, language=words.language
        )

    def trace_link(self, trace_id: str) -> str:
        template = self.portal.settings.trace_url
        return template.replace("{trace_id}", quote(trace_id)) if template and trace_id else ""

    async def audit(self, staff: Staff, action: str, subject: str, **details: Any) -> None:
        await self.portal.store.audit(
            tenant_id=staff.session.tenant_id,
            actor=f"console:{staff.session.email}",
            action=action,
            subject=subject,
            now=self.portal.clock.now(),
            role=staff.session.role,
            **details,
        )


@dataclass
class Staff:
    """The signed-in account on this request, and the services as its tenant."""

    session: ConsoleSession
    services: Services

    def may(self, role: Role) -> bool:
        return allows(self.session.role, role)


def to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/console/login?next={quote(target, safe='')}", status_code=303)


def forbidden(console: Console, request: Request, problem: str = "forbidden") -> Response:
    return console.page(request, "problem.html", {"problem": problem}, status=403)


async def signed_in(console: Console, request: Request) -> Staff | None:
    session = await console.sessions.find(cookie(request, (COOKIE_SECURE, COOKIE_PLAIN)), now=wall_now())
    if session is None:
        return None
    # The account as it is now: a disabled account or a role taken away ends its sessions at once.
    account = await console.accounts.get(session.account_id)
    if account is None or not account.roles.get(session.tenant_id):
        return None
    session = replace(session, role=account.roles[session.tenant_id], roles=dict(account.roles))
    return Staff(session, Services(console.portal.clients, session.tenant_id))


def page(
    console: Console, handler: Page, role: Role = "customer_service"
) -> Callable[[Request], Awaitable[Response]]:
    """A page for a signed-in account with at least `role` on its tenant."""

    async def endpoint(request: Request) -> Response:
        staff = await signed_in(console, request)
        if staff is None:
            return to_login(request)
        if not staff.may(role):
            return forbidden(console, request, "not_allowed")
        return await handler(request, staff)

    return endpoint


def action(
    console: Console, handler: Action, role: Role = "customer_service"
) -> Callable[[Request], Awaitable[Response]]:
    """A form's POST: signed in, the role, and the session's CSRF token in the form (else refused)."""

    async def endpoint(request: Request) -> Response:
        staff = await signed_in(console, request)
        if staff is None:
            return to_login(request)
        form = await request.form()
        sent = form.get("csrf")
        if not isinstance(sent, str) or not secrets.compare_digest(sent, staff.session.csrf):
            return forbidden(console, request)
        if not staff.may(role):
            return forbidden(console, request, "not_allowed")
        return await handler(request, staff, form)

    return endpoint


def field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""
