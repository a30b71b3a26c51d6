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

    async def by_id(self, tenant_id: str) -> Tenant | None: ...


# Service-to-service calls: `authorization: Service <token>` and the tenant they act for.
TENANT_HEADER = "x-fordring-tenant"
CALLER_HEADER = "x-fordring-caller"


def service_metadata(token: str, tenant_id: str, caller: str) -> tuple[tuple[str, str], ...]:
    """The metadata of a call one Fordring service makes to another on behalf of a tenant."""
    headers = [("authorization", f"Service {token}"), (CALLER_HEADER, caller)]
    if tenant_id:
        headers.append((TENANT_HEADER, tenant_id))
    return tuple(headers)


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


def metadata_value(metadata: tuple[tuple[str, str | bytes], ...] | None, name: str) -> str:
    for key, value in metadata or ():
        if key.lower() == name:
            return (value.decode(errors="replace") if isinstance(value, bytes) else value).strip()
    return ""


def authorization(metadata: tuple[tuple[str, str | bytes], ...] | None) -> tuple[str, str]:
    """The scheme (lower case: "bearer", "service") and the credential of `authorization`."""
    scheme, _, credential = metadata_value(metadata, "authorization").partition(" ")
    return scheme.lower(), credential.strip()


def bearer_key(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str:
    scheme, credential = authorization(metadata)
    return credential if scheme == "bearer" else ""
