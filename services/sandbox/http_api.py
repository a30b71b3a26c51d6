"""What the sandbox's HTTP providers share (PROTOCOLS.md, "Common rules"): bearer auth, the
idempotency key, JSON bodies, `{"error", "message"}` refusals, and the answer to a key seen before —
the first answer again (recorded `duplicate`), or 409 when the key came with another request."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from services.sandbox.context import Inbox

KEY = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def refuse(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


def bearer(request: web.Request) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


async def json_object(request: web.Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def seen_before(
    inbox: Inbox, key: str, request_digest: str, what: str, answer: Mapping[str, Any]
) -> web.Response | None:
    """The answer to a key accepted before (`answer` may use the first record's id as `{id}`), or
    None when the key is new."""
    earlier = inbox.seen(key)
    if earlier is None:
        return None
    if earlier.get("digest") != request_digest:
        inbox.record(key, "refused", error="idempotency_conflict")
        return refuse(409, "idempotency_conflict", f"this key was used for another {what}")
    inbox.record(key, "duplicate", id=earlier["id"])
    return web.json_response(
        {k: (earlier["id"] if v == "{id}" else v) for k, v in answer.items()}, status=200
    )
