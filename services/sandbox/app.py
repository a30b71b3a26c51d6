"""The sandbox: every outside provider the dispatcher talks to, in one local process.

Each provider lives in `services/sandbox/providers/<name>.py` and exposes
`setup(app: aiohttp.web.Application, ctx: SandboxContext, settings: SandboxSettings) -> None`, which
adds its routes (and, with `app.on_startup` / `app.on_cleanup`, anything it runs: the SMTP server, a
directory watcher). The control API (`/control/...`, services/sandbox/control.py) lets a person or a
test make the next sends fail, bounce, be rejected or returned, be delayed, or go unopened.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from types import ModuleType

from aiohttp import web

from services.common.clock import SandboxClock
from services.common.mongo import create_mongo_client
from services.common.sandbox_clock import sandbox_clock
from services.sandbox.context import Callbacks, Faults, SandboxContext
from services.sandbox.settings import SandboxSettings

log = logging.getLogger(__name__)

PROVIDERS = ("control", "email", "sms", "vipps", "efaktura", "peppol", "print", "avtalegiro")
CONTEXT: web.AppKey[SandboxContext] = web.AppKey("sandbox", SandboxContext)


def _module(name: str) -> ModuleType | None:
    path = "services.sandbox.control" if name == "control" else f"services.sandbox.providers.{name}"
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError as missing:
        if missing.name != path:
            raise
        return None


def make_app(settings: SandboxSettings) -> web.Application:
    settings.root.mkdir(parents=True, exist_ok=True)
    ctx = SandboxContext(
        root=settings.root,
        faults=Faults(),
        callbacks=Callbacks(settings.webhook_url, settings.secrets()),
        open_after=settings.open_after,
    )
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[CONTEXT] = ctx
    if settings.clock_mongo_uri:
        _follow_sandbox_clock(app, ctx, settings)
    app.router.add_get("/healthz", _healthz)
    # `fordring up` waits on /readyz like on every service: the providers are set up before it answers.
    app.router.add_get("/readyz", _healthz)
    for name in PROVIDERS:
        module = _module(name)
        if module is not None:
            module.setup(app, ctx, settings)

    async def close(_: web.Application) -> None:
        await ctx.close()

    app.on_cleanup.append(close)
    return app


# How often the sandbox reads the stack's clock (as every service does: services/common/runtime.py).
CLOCK_REFRESH_SECONDS = 0.5


def _follow_sandbox_clock(app: web.Application, ctx: SandboxContext, settings: SandboxSettings) -> None:
    """Date receipts by the stack's sandbox clock: a mail opened after `fordring sandbox clock advance`
    is opened at the services' time, after its send, not weeks before it."""
    client = create_mongo_client(settings.clock_mongo_uri, app_name="fordring-sandbox")
    clock = sandbox_clock(client[settings.clock_database])
    ctx.clock = clock
    tasks: list[asyncio.Task[None]] = []

    async def start(_: web.Application) -> None:
        await _refresh(clock)
        tasks.append(asyncio.create_task(_keep_refreshing(clock)))

    async def stop(_: web.Application) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)


async def _refresh(clock: SandboxClock) -> None:
    try:
        await clock.refresh()
    except Exception as exc:  # the database is away: keep the time it had, read again later
        log.warning("sandbox: cannot read the sandbox clock (%s)", exc)


async def _keep_refreshing(clock: SandboxClock) -> None:
    while True:
        await asyncio.sleep(CLOCK_REFRESH_SECONDS)
        await _refresh(clock)


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def serve(settings: SandboxSettings) -> None:
    """Run until cancelled (SIGTERM/SIGINT end `web.run_app`'s loop)."""
    app = make_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.http_port)
    await site.start()
    log.info(
        "sandbox providers on http://%s:%s (SMTP %s)", settings.host, settings.http_port, settings.smtp_port
    )
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
