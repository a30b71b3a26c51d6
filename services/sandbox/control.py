"""The sandbox's control API: what a person or a test tells the outside world to do next.

`/control/faults` queues outcomes for a channel's next sends, `/control/records/<channel>` shows what
a channel received, `/control/reader` sets when the simulated customer opens a message, and
`/control/registry` overrides whom the EHF and eFaktura registries know. Bad input is answered 400
with `{"error": "<code>", "message": "…"}`, as the providers answer.
"""

from __future__ import annotations

import json
import math
from typing import Any, NoReturn

from aiohttp import web

from services.dispatcher.adapters.base import CHANNELS
from services.sandbox.context import OUTCOMES, Fault, SandboxContext
from services.sandbox.settings import SandboxSettings

REGISTRY_CHANNELS = ("ehf", "efaktura")
MAX_COUNT = 10_000
MAX_SECONDS = 3600.0


def _refuse(code: str, message: str) -> NoReturn:
    raise web.HTTPBadRequest(
        text=json.dumps({"error": code, "message": message}), content_type="application/json"
    )


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        _refuse("invalid_json", "the body is not JSON")
    if not isinstance(body, dict):
        _refuse("invalid_json", "the body must be a JSON object")
    return body


def _channel(value: object, known: tuple[str, ...] = CHANNELS) -> str:
    if not isinstance(value, str) or value not in known:
        _refuse("unknown_channel", f"channel must be one of {', '.join(known)} (got {value!r})")
    return value


def _seconds(body: dict[str, Any], name: str, default: float) -> float:
    value = body.get(name, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= MAX_SECONDS
    ):
        _refuse(f"invalid_{name}", f"{name} must be a number of seconds from 0 to {MAX_SECONDS:g}")
    return float(value)


def setup(app: web.Application, ctx: SandboxContext, settings: SandboxSettings) -> None:
    del settings

    async def add_fault(request: web.Request) -> web.Response:
        body = await _body(request)
        channel = _channel(body.get("channel"))
        outcome = body.get("outcome")
        if outcome not in OUTCOMES:
            _refuse("unknown_outcome", f"outcome must be one of {', '.join(OUTCOMES)} (got {outcome!r})")
        count = body.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
            _refuse("invalid_count", f"count must be a whole number from 1 to {MAX_COUNT}")
        seconds = _seconds(body, "seconds", 0.0)
        ctx.faults.add(channel, Fault(outcome, seconds), count)
        return web.json_response({"pending": ctx.faults.pending()})

    async def faults(_: web.Request) -> web.Response:
        return web.json_response({"pending": ctx.faults.pending()})

    async def clear_faults(_: web.Request) -> web.Response:
        ctx.faults.clear()
        return web.json_response({"pending": {}})

    async def records(request: web.Request) -> web.Response:
        # A provider may keep an inbox under another name than the channel's (it shows once used).
        known = (*CHANNELS, *sorted(set(ctx.inboxes) - set(CHANNELS)))
        channel = _channel(request.match_info["channel"], known)
        return web.json_response(ctx.inbox(channel).records())

    async def reader(request: web.Request) -> web.Response:
        body = await _body(request)
        if "open_after" not in body:
            _refuse("invalid_open_after", "open_after is required (seconds; 0: the customer opens nothing)")
        ctx.open_after = _seconds(body, "open_after", ctx.open_after)
        return web.json_response({"open_after": ctx.open_after})

    async def show_reader(_: web.Request) -> web.Response:
        return web.json_response({"open_after": ctx.open_after, "opened": ctx.opened})

    async def registry(request: web.Request) -> web.Response:
        body = await _body(request)
        channel = _channel(body.get("channel"), REGISTRY_CHANNELS)
        ident = body.get("id")
        if not isinstance(ident, str) or not ident.strip():
            _refuse("invalid_id", "id must be a non-empty string (a participant id, phone or e-mail)")
        reachable = body.get("reachable")
        if not isinstance(reachable, bool):
            _refuse("invalid_reachable", "reachable must be true or false")
        ctx.registry.setdefault(channel, {})[ident.strip()] = reachable
        return web.json_response({"registry": ctx.registry})

    async def show_registry(_: web.Request) -> web.Response:
        return web.json_response({"registry": ctx.registry})

    app.router.add_post("/control/faults", add_fault)
    app.router.add_get("/control/faults", faults)
    app.router.add_delete("/control/faults", clear_faults)
    app.router.add_get("/control/records/{channel}", records)
    app.router.add_post("/control/reader", reader)
    app.router.add_get("/control/reader", show_reader)
    app.router.add_post("/control/registry", registry)
    app.router.add_get("/control/registry", show_registry)
