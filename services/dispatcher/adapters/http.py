"""What the HTTP providers' adapters share (SMS, Vipps, eFaktura): one reused session, bearer auth,
the idempotency key, JSON both ways, and the mapping of every failure to a ChannelError.

429, 5xx, timeouts and broken connections are retryable: the send carries the delivery's idempotency
key, so a retry of a request the provider did take is answered with the first result, never sent
twice. 400/404/409/422 refuse this delivery for good (with the provider's error code); 401/403 are
our credentials (code "credentials", for the operator). Response bodies may hold personal data:
only their error codes reach the logs.

The receipt helpers at the end read the providers' JSON webhooks (PROTOCOLS.md) strictly: anything
that is not one is a BadReceipt.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from services.dispatcher.adapters.base import BadReceipt, ChannelError, Contact

log = logging.getLogger(__name__)

_PERMANENT = frozenset({400, 404, 409, 422})
_RETRYABLE = frozenset({408, 425, 429})
_CREDENTIALS = frozenset({401, 403})
_ERROR_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# E.164: a plus, a country code (never 0) and at most 15 digits in all.
E164 = re.compile(r"\+[1-9][0-9]{6,14}")


@dataclass(frozen=True)
class Reply:
    """A 2xx answer: 200 for a send the provider had taken before (the idempotency key), else 201/202."""

    status: int
    body: dict[str, Any]

    @property
    def duplicate(self) -> bool:
        return self.status == 200


def _error_code(body: bytes) -> str:
    """The provider's error code from `{"error": …}` (ours) or an RFC 7807 body's `extraDetails`
    ErrorCode (Vipps), if it looks like a code; never the message."""
    try:
        payload = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(payload, dict):
        return ""
    code = payload.get("error")
    details = payload.get("extraDetails")
    if not isinstance(code, str) and isinstance(details, list):
        codes = [d.get("reason") for d in details if isinstance(d, dict) and d.get("name") == "ErrorCode"]
        code = codes[0] if codes else None
    return code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else ""


class HttpClient:
    """A provider's JSON API: `Authorization: Bearer <api_key>` and `headers` on every request.

    `bad_contacts` maps the provider's error codes that prove a contact bad (an SMS provider's
    `invalid_recipient`) to that contact, which the refusal's ChannelError names.
    """

    def __init__(
        self,
        provider: str,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        headers: Mapping[str, str] | None = None,
        bad_contacts: Mapping[str, Contact] | None = None,
    ) -> None:
        self.provider = provider
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
        self._headers = dict(headers or {})
        self._bad_contacts = dict(bad_contacts or {})
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop; reused for the adapter's life (its connection pool).
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                headers={"Accept": "application/json", "User-Agent": "fordring-dispatcher"},
            )
        return self._session

    async def post(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        idempotency_key: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """POST `body` as JSON to `path`; the 2xx reply, or ChannelError."""
        sent = {"Content-Type": "application/json", **self._headers, **(headers or {})}
        if self._api_key:
            sent["Authorization"] = f"Bearer {self._api_key}"
        if idempotency_key:
            sent["Idempotency-Key"] = idempotency_key
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        url = f"{self._base_url}{path}"
        try:
            async with self._client().post(url, data=data, headers=sent, allow_redirects=False) as reply:
                status = reply.status
                raw = await reply.read()
        except TimeoutError:
            log.warning("%s: POST %s timed out", self.provider, path)
            raise ChannelError(
                f"{self.provider}: no answer in time", retryable=True, code="timeout"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            log.warning("%s: POST %s failed: %s", self.provider, path, type(exc).__name__)
            raise ChannelError(
                f"{self.provider}: cannot reach the provider ({type(exc).__name__})",
                retryable=True,
                code="connection",
            ) from None
        if 200 <= status < 300:
            try:
                payload = json.loads(raw) if raw else {}
            except ValueError:
                payload = None
            if not isinstance(payload, dict):
                # Whatever it took is keyed by the idempotency key: asking again is safe.
                log.warning("%s: POST %s answered %s without a JSON object", self.provider, path, status)
                raise ChannelError(
                    f"{self.provider}: answered {status} without a JSON object",
                    retryable=True,
                    code="bad_response",
                )
            return Reply(status, payload)
        raise self._refusal(path, status, _error_code(raw))

    def _refusal(self, path: str, status: int, code: str) -> ChannelError:
        log.warning("%s: POST %s answered %s %s", self.provider, path, status, code or "(no code)")
        code = code or f"http_{status}"
        if status in _RETRYABLE or status >= 500:
            return ChannelError(
                f"{self.provider}: temporarily refused ({status} {code})", retryable=True, code=code
            )
        if status in _CREDENTIALS:
            return ChannelError(
                f"{self.provider}: our credentials were refused ({status}): the operator must check them",
                retryable=False,
                code="credentials",
            )
        return ChannelError(
            f"{self.provider}: refused the delivery ({status} {code})",
            retryable=False,
            code=code,
            contact=self._bad_contacts.get(code) if status in _PERMANENT else None,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def json_receipts(body: bytes, content_type: str) -> list[dict[str, Any]]:
    """The receipt objects of a JSON webhook body (one object, or a list of them)."""
    media = content_type.partition(";")[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        raise BadReceipt(f"expected a JSON body, got {media}")
    try:
        payload = json.loads(body)
    except ValueError:
        raise BadReceipt("the body is not JSON") from None
    items = payload if isinstance(payload, list) else [payload]
    if not items or not all(isinstance(item, dict) for item in items):
        raise BadReceipt("expected a receipt object or a list of them")
    return items


def text_field(item: Mapping[str, Any], name: str, *, required: bool = True) -> str:
    value = item.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise BadReceipt(f"the receipt's {name!r} must be a non-empty string")
    return value


def time_field(item: Mapping[str, Any], name: str = "at") -> datetime:
    """An ISO 8601 time (UTC when it names no offset)."""
    value = text_field(item, name)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise BadReceipt(f"the receipt's {name!r} is not an ISO 8601 time") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
