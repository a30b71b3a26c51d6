"""The sandbox providers in-process for tests, and a webhook receiver standing in for the dispatcher's
public port: it checks each receipt's signature and keeps what arrived."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from services.common.webhooks import SIGNATURE_HEADER, BadSignature, verify
from services.sandbox.app import CONTEXT, make_app
from services.sandbox.context import SandboxContext
from services.sandbox.settings import SandboxSettings

PROVIDERS = ("email", "sms", "vipps", "efaktura", "peppol", "print", "avtalegiro")
SECRETS = {name: f"test-secret-{name}" for name in PROVIDERS}


@dataclass
class Received:
    provider: str
    payload: dict[str, Any]


@dataclass
class WebhookReceiver:
    """What the sandbox posted back, signature checked (a bad one is answered 401 and kept apart)."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    # Opens: GET /i/<token> (the simulated customer following a link).
    opened: list[str] = field(default_factory=list)

    def of(self, provider: str) -> list[dict[str, Any]]:
        return [r.payload for r in self.received if r.provider == provider]

    async def wait_for(
        self, found: Callable[[WebhookReceiver], Any], *, timeout: float = 10.0, what: str = "a webhook"
    ) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = found(self)
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} did not arrive within {timeout:.0f} s: {self.received}")
            await asyncio.sleep(0.05)


@dataclass
class Sandbox:
    url: str
    smtp_port: int
    ctx: SandboxContext
    settings: SandboxSettings
    webhooks: WebhookReceiver


def _receiver(receiver: WebhookReceiver) -> web.Application:
    async def webhook(request: web.Request) -> web.Response:
        provider = request.match_info["provider"]
        body = await request.read()
        try:
            verify(body, request.headers.get(SIGNATURE_HEADER), SECRETS.get(provider, ""))
        except BadSignature as exc:
            receiver.refused.append(f"{provider}: {exc}")
            return web.json_response({"error": "bad_signature"}, status=401)
        receiver.received.append(Received(provider, json.loads(body)))
        return web.json_response({"ok": True})

    async def opened(request: web.Request) -> web.Response:
        receiver.opened.append(request.match_info["token"])
        return web.Response(text="<html>invoice</html>", content_type="text/html")

    app = web.Application()
    app.router.add_post("/webhooks/{provider}", webhook)
    app.router.add_get("/i/{token}", opened)
    return app


async def _start(app: web.Application, host: str = "127.0.0.1") -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port: int = runner.addresses[0][1]
    return runner, port


@contextlib.asynccontextmanager
async def running_sandbox(
    root: Path,
    *,
    open_after: float = 0.2,
    clock_mongo_uri: str = "",
    clock_database: str = "fordring_sandbox",
) -> AsyncIterator[Sandbox]:
    """The sandbox on free ports with its files under `root`, posting to a local webhook receiver (its
    receipts dated by the sandbox clock kept in `clock_database` when `clock_mongo_uri` is given)."""
    receiver = WebhookReceiver()
    receiver_runner, receiver_port = await _start(_receiver(receiver))
    receiver.url = f"http://127.0.0.1:{receiver_port}"
    settings = SandboxSettings(
        http_port=0,
        smtp_port=0,
        root=root / "sandbox",
        print_drop=root / "print-drop",
        nets_dir=root / "nets",
        webhook_url=receiver.url,
        webhook_secrets=",".join(f"{k}={v}" for k, v in SECRETS.items()),
        open_after=open_after,
        clock_mongo_uri=clock_mongo_uri,
        clock_database=clock_database,
    )
    app = make_app(settings)
    runner, port = await _start(app)
    try:
        ctx = app[CONTEXT]
        yield Sandbox(f"http://127.0.0.1:{port}", ctx.smtp_port, ctx, settings, receiver)
    finally:
        await runner.cleanup()
        await receiver_runner.cleanup()
