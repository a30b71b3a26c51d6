"""Tenants: who is calling. The API key in `authorization: Bearer <key>` names the tenant."""

from __future__ import annotations

import hashlib
from contextvars import ContextVar
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from services.common.errors import Unauthenticated


class Tenant(BaseModel):
    """A creditor using Fordring, with the settings its agreements fix."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    # Which API key was used (its name, never the key): shown as the actor in histories.
    key_name: str = ""
    jurisdiction: Literal["NO", "SE"] = "NO"
    default_currency: str = "NOK"
    org_number: str = ""
    kid_scheme: Literal["mod10", "mod11"] = "mod10"
    kid_length: int = Field(default=10, ge=4, le=25)
    invoice_number_start: int = Field(default=1, ge=1)
    credit_note_prefix: str = "CN-"
    timezone: str = "Europe/Oslo"


class TenantResolver(Protocol):
    async def resolve(self, api_key: str) -> Tenant | None: ...


_current: ContextVar[Tenant | None] = ContextVar("fordring_tenant", default=None)


def hash_api_key(api_key: str) -> str:
    """Keys are stored only as SHA-256 digests."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def set_current_tenant(tenant: Tenant | None) -> None:
    _current.set(tenant)


def current_tenant() -> Tenant:
    tenant = _current.get()
    if tenant is None:
        raise Unauthenticated("no tenant for this call")
    return tenant


def bearer_key(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str:
    for key, value in metadata or ():
        if key.lower() == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return ""
