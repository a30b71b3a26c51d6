"""Signing in and out, and switching the tenant a session acts for."""

from __future__ import annotations

import secrets
from datetime import timedelta

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.portal.console.guard import (
    COOKIE_PLAIN,
    COOKIE_SECURE,
    LOGIN_COOKIE_PLAIN,
    LOGIN_COOKIE_SECURE,
    Console,
    Staff,
    cookie,
    field,
    forbidden,
    secure,
    set_cookie,
    wall_now,
)

# Longer is no password anyone types; not hashed (argon2 would take it, at a cost).
MAX_PASSWORD = 1024


def safe_next(target: str) -> str:
    """Only a console path of this site (never another host: no open redirect)."""
    if target.startswith("/console") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console"


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def login_form(console: Console, request: Request, *, problem: str = "", status: int = 200) -> Response:
    """The form with a fresh token, also set as a cookie: a login posted from elsewhere lacks one of them."""
    token = secrets.token_urlsafe(32)
    response = console.page(
        request,
        "login.html",
        {"csrf": token, "next": safe_next(request.query_params.get("next", "")), "problem": problem},
        status=status,
    )
    set_cookie(
        response, request, console.portal, (LOGIN_COOKIE_SECURE, LOGIN_COOKIE_PLAIN), token, max_age=3600
    )
    return response


async def login(console: Console, request: Request) -> Response:
    form = await request.form()
    sent, expected = field(form, "csrf"), cookie(request, (LOGIN_COOKIE_SECURE, LOGIN_COOKIE_PLAIN))
    if not sent or not expected or not secrets.compare_digest(sent, expected):
        return forbidden(console, request)
    settings = console.portal.settings
    email = field(form, "email").lower()[:320]
    sent_password = form.get("password")
    password = sent_password if isinstance(sent_password, str) and len(sent_password) <= MAX_PASSWORD else ""
    keys = [f"account:{email}", f"ip:{client_address(request)}"]
    now = wall_now()
    limits = {keys[0]: settings.console_login_limit, keys[1]: settings.console_login_limit_per_address}
    if await console.sessions.blocked(limits, now=now):
        await console.portal.store.audit(
            tenant_id="",
            actor=f"console:{email}",
            action="login.blocked",
            subject=email,
            now=console.portal.clock.now(),
            address=keys[1].removeprefix("ip:"),
        )
        return await login_form(console, request, problem="login_blocked", status=429)
    account = await console.accounts.check(email, password) if password else None
    if account is None or not account.roles:
        window = timedelta(minutes=settings.console_login_window_minutes)
        await console.sessions.failed(keys, window=window, now=now)
        await console.portal.store.audit(
            tenant_id="",
            actor=f"console:{email}",
            action="login.failed",
            subject=email,
            now=console.portal.clock.now(),
            address=keys[1].removeprefix("ip:"),
        )
        return await login_form(console, request, problem="login_failed", status=401)
    await console.sessions.succeeded(keys[0])
    tenant_id = sorted(account.roles)[0]
    session = await console.sessions.open(account, tenant_id, now=now)
    await console.portal.store.audit(
        tenant_id=tenant_id,
        actor=f"console:{account.email}",
        action="login",
        subject=account.email,
        now=console.portal.clock.now(),
        role=session.role,
    )
    response = RedirectResponse(safe_next(field(form, "next")), status_code=303)
    max_age = int(settings.console_session_hours * 3600)
    set_cookie(
        response, request, console.portal, (COOKIE_SECURE, COOKIE_PLAIN), session.token, max_age=max_age
    )
    https = secure(request, console.portal)
    response.delete_cookie(
        LOGIN_COOKIE_SECURE if https else LOGIN_COOKIE_PLAIN,
        path="/",
        secure=https,
        httponly=True,
        samesite="strict",
    )
    return response


async def logout(console: Console, request: Request, staff: Staff, form: FormData) -> Response:
    del form
    await console.audit(staff, "logout", staff.session.email)
    await console.sessions.close(staff.session.token)
    response = RedirectResponse("/console/login", status_code=303)
    for name in (COOKIE_SECURE, COOKIE_PLAIN):
        response.delete_cookie(name, path="/", secure=name == COOKIE_SECURE, httponly=True, samesite="strict")
    return response


async def switch_tenant(console: Console, request: Request, staff: Staff, form: FormData) -> Response:
    tenant_id = field(form, "tenant")
    if tenant_id not in staff.session.roles:
        return forbidden(console, request, "not_allowed")
    await console.sessions.switch(staff.session, tenant_id)
    await console.audit(staff, "tenant.switch", tenant_id)
    return RedirectResponse("/console", status_code=303)
