"""EHF through a Peppol access point (PROTOCOLS.md, provider `peppol`): the renderer's UBL document
to the buyer's Peppol id, and the participant registry (ELMA) that says who can receive it.

Peppol addresses a business by its organisation number under a scheme: 0192 for Norway
(Enhetsregisteret), 0007 for Sweden (Bolagsverket). Consumers and businesses elsewhere are not
reachable. The access point posts a receipt later: delivered, or rejected by the receiver (an MLR).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

import aiohttp
from stdnum.no import orgnr as no_orgnr
from stdnum.se import orgnr as se_orgnr

from services.dispatcher.adapters.base import (
    BadReceipt,
    ChannelError,
    ChannelName,
    Contact,
    Outgoing,
    Receipt,
    ReceiptStatus,
    Recipient,
    SendResult,
)
from services.dispatcher.adapters.http import json_receipts, text_field, time_field

log = logging.getLogger(__name__)

SCHEMES = {"NO": "0192", "SE": "0007"}
_COUNTRY_BY_LENGTH = {9: "NO", 10: "SE"}
_ORG_NUMBER_VALID: dict[str, Callable[[str], bool]] = {"NO": no_orgnr.is_valid, "SE": se_orgnr.is_valid}
_STATUSES: dict[str, ReceiptStatus] = {"delivered": "delivered", "rejected": "rejected"}
_PERMANENT = frozenset({400, 404, 409, 422})
_CREDENTIALS = frozenset({401, 403})
# Error codes that prove the buyer's Peppol address bad (the ledger flags it for cleaning).
_BAD_ADDRESS = frozenset({"unknown_participant", "receiver_refused"})
_ERROR_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def participant_id(org_number: str, country: str) -> str | None:
    """ "0192:974760673" for a Norwegian or Swedish organisation number (spaces, dashes, the NO
    prefix and the MVA suffix dropped, the check digit verified); None when Peppol cannot address it.
    An empty `country` is inferred from the length: 9 digits Norwegian, 10 Swedish."""
    digits = "".join(c for c in org_number if c.isdigit())
    country = country.strip().upper() or _COUNTRY_BY_LENGTH.get(len(digits), "")
    scheme = SCHEMES.get(country)
    if scheme is None or not _ORG_NUMBER_VALID[country](digits):
        return None
    return f"{scheme}:{digits}"


def recipient_participant(recipient: Recipient) -> str | None:
    """The buyer's Peppol id: businesses with an organisation number in Norway or Sweden."""
    if recipient.kind != "business" or not recipient.org_number.strip():
        return None
    return participant_id(recipient.org_number, recipient.address.country)


class _AccessPoint:
    """The access point's HTTP API: one reused session, bearer auth, every failure a ChannelError."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float, connect_timeout: float) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop; reused for the adapter's life.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                headers={"Accept": "application/json", "User-Agent": "fordring-dispatcher"},
            )
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """The status and body of any answer; ChannelError(retryable) when there was none. `what`
        names the call in logs (never the participant or the document)."""
        sent = dict(headers or {})
        if self._api_key:
            sent["Authorization"] = f"Bearer {self._api_key}"
        try:
            async with self._client().request(
                method, f"{self._base_url}{path}", data=data, headers=sent, allow_redirects=False
            ) as reply:
                return reply.status, await reply.read()
        except TimeoutError:
            log.warning("peppol: %s timed out", what)
            raise ChannelError("peppol: no answer in time", retryable=True, code="timeout") from None
        except (aiohttp.ClientError, OSError) as exc:
            log.warning("peppol: %s failed: %s", what, type(exc).__name__)
            raise ChannelError(
                f"peppol: cannot reach the access point ({type(exc).__name__})",
                retryable=True,
                code="connection",
            ) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _refusal(status: int, body: bytes) -> ChannelError:
    """A non-2xx answer as a ChannelError: 429/5xx retryable, 401/403 our credentials, else permanent."""
    payload = _json_object(body) or {}
    code = payload.get("error")
    code = code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else f"http_{status}"
    log.warning("peppol: the access point answered %s %s", status, code)
    if status in (408, 425, 429) or status >= 500:
        return ChannelError(f"peppol: temporarily refused ({status} {code})", retryable=True, code=code)
    if status in _CREDENTIALS:
        return ChannelError(
            f"peppol: our credentials were refused ({status}): the operator must check them",
            retryable=False,
            code="credentials",
        )
    contact: Contact | None = "ehf" if status in _PERMANENT and code in _BAD_ADDRESS else None
    return ChannelError(
        f"peppol: refused the document ({status} {code})", retryable=False, code=code, contact=contact
    )


class PeppolRegistry:
    """Who can receive EHF: GET /peppol/v1/participants/<scheme>:<id> (200 registered, 404 not).

    `PeppolRegistry(base_url, api_key, *, timeout=10.0, connect_timeout=5.0)`: the registry's (SMP
    lookup service's) base URL, our bearer key, the whole request's and the connect's timeouts in
    seconds. The answer is now's: the dispatcher caches it.
    """

    channel: ChannelName = "ehf"

    def __init__(
        self, base_url: str, api_key: str, *, timeout: float = 10.0, connect_timeout: float = 5.0
    ) -> None:
        self._api = _AccessPoint(base_url, api_key, timeout=timeout, connect_timeout=connect_timeout)

    async def reachable(self, recipient: Recipient) -> bool:
        """Whether the recipient is registered for EHF. ChannelError when the registry cannot say:
        retryable when it is down or busy, code "credentials" when it refuses our key (the caller
        decides whether to wait or use another channel)."""
        participant = recipient_participant(recipient)
        if participant is None:
            return False
        status, body = await self._api.request(
            "GET", f"/peppol/v1/participants/{participant}", what="participant lookup"
        )
        if status == 200:
            return True
        if status in (400, 404):
            # 404: not registered; 400: not an id the registry knows how to hold.
            return False
        raise _refusal(status, body)

    async def close(self) -> None:
        await self._api.close()


class PeppolAdapter:
    """Sends the `ehf` form (UBL XML) to the access point; the receipt follows by webhook.

    `PeppolAdapter(base_url, api_key, *, timeout=30.0, connect_timeout=5.0)`: the access point's base
    URL, our bearer key, and the timeouts in seconds. The sender is the creditor's organisation number
    under its jurisdiction's scheme, the receiver the buyer's (`recipient_participant`).

    Refusals: no Peppol id for the buyer, or an access point answering `unknown_participant` (or
    `receiver_refused`) → permanent with contact "ehf" (the ledger's EHF address is wrong);
    `invalid_document` → permanent, no contact (the renderer's document is at fault). A receipt
    `rejected` is the receiver's refusal of this document (an MLR), not of the address.
    """

    channel: ChannelName = "ehf"
    provider = "peppol"

    def __init__(
        self, base_url: str, api_key: str, *, timeout: float = 30.0, connect_timeout: float = 5.0
    ) -> None:
        self._api = _AccessPoint(base_url, api_key, timeout=timeout, connect_timeout=connect_timeout)

    async def send(self, out: Outgoing) -> SendResult:
        document = out.documents.get("ehf")
        if not document:
            raise ChannelError("no EHF document was rendered", retryable=False, code="no_document")
        receiver = recipient_participant(out.recipient)
        if receiver is None:
            raise ChannelError(
                "the recipient has no Norwegian or Swedish organisation number Peppol can address",
                retryable=False,
                code="not_addressable",
                contact="ehf",
            )
        sender = participant_id(out.creditor.org_number, out.creditor.jurisdiction)
        if sender is None:
            raise ChannelError(
                "the creditor's organisation number is not a Peppol id", retryable=False, code="no_sender"
            )
        status, body = await self._api.request(
            "POST",
            "/peppol/v1/documents",
            what="document send",
            data=document,
            headers={
                "Content-Type": "application/xml",
                "Idempotency-Key": out.delivery_id,
                "X-Peppol-Sender": sender,
                "X-Peppol-Receiver": receiver,
            },
        )
        if not 200 <= status < 300:
            raise _refusal(status, body)
        payload = _json_object(body) or {}
        ref = payload.get("id")
        if not isinstance(ref, str) or not ref:
            # The access point keyed whatever it took by the idempotency key: asking again is safe.
            raise ChannelError(
                f"peppol: answered {status} without a document id", retryable=True, code="bad_response"
            )
        detail = f"{status} {payload.get('status', '')}".strip() + (" (duplicate)" if status == 200 else "")
        return SendResult(provider_ref=ref, state="accepted", detail=detail)

    def parse_receipts(self, body: bytes, content_type: str) -> list[Receipt]:
        return [_receipt(item) for item in json_receipts(body, content_type)]

    async def close(self) -> None:
        await self._api.close()


def _receipt(item: dict[str, Any]) -> Receipt:
    status = _STATUSES.get(text_field(item, "status"))
    if status is None:
        raise BadReceipt(f"unknown receipt status {item.get('status')!r}")
    ref = text_field(item, "id")
    # A rejection refuses the document (the receiver's MLR), not the address: no contact is flagged.
    return Receipt(
        event_id=text_field(item, "event_id"),
        delivery_id=text_field(item, "delivery_id", required=False) or ref,
        provider_ref=ref,
        status=status,
        occurred_at=time_field(item),
        reason=text_field(item, "reason", required=False) if status == "rejected" else "",
    )
