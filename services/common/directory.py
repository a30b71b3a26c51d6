"""The one tenant directory, as every service other than the ledger reaches it.

The ledger owns tenants, their API keys and their creditor profiles. Each other service resolves a
caller's API key, a tenant id or a profile version through the ledger's internal
`TenantDirectoryService` over gRPC (with the service credential), cached briefly, so a key works on
every service's API and a revoked key stops working everywhere within `KEY_SECONDS`. Profile
versions never change, so they are cached for as long as they are used.
"""

from __future__ import annotations

import hashlib

import grpc
from fordring.ledger.v1 import tenants_pb2 as tpb
from fordring.ledger.v1 import tenants_pb2_grpc

from services.common.cache import ExpiringLru
from services.common.creditor import CreditorProfile, PostalAddress
from services.common.errors import Unavailable
from services.common.tenancy import Tenant, service_metadata

KEY_SECONDS = 30.0
UNKNOWN_SECONDS = 2.0
TENANT_SECONDS = 30.0
PROFILE_SECONDS = 24 * 3600.0
MAX_KEY_LENGTH = 256
_CHANNEL_OPTIONS = (
    # Calls spread over every address the target resolves to (a headless Service: every pod).
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_receive_message_length", 8 * 1024 * 1024),
)


class DirectoryUnavailable(Unavailable):
    """The ledger did not answer: the caller should retry (an API call answers UNAVAILABLE)."""


def tenant_from_info(info: tpb.TenantInfo) -> Tenant:
    return Tenant(
        id=info.id,
        name=info.name,
        key_name=info.key_name,
        jurisdiction=info.jurisdiction or "NO",
        default_currency=info.default_currency or "NOK",
        org_number=info.org_number,
        kid_scheme=info.kid_scheme or "mod10",
        kid_length=info.kid_length or 10,
        invoice_number_start=info.invoice_number_start or 1,
        credit_note_prefix=info.credit_note_prefix or "CN-",
        timezone=info.timezone or "Europe/Oslo",
    )


def profile_from_pb(msg: tpb.CreditorProfile) -> CreditorProfile:
    return CreditorProfile(
        legal_name=msg.legal_name,
        org_number=msg.org_number,
        jurisdiction=msg.jurisdiction or "NO",
        company_form=msg.company_form,
        vat_registered=msg.vat_registered,
        address=PostalAddress(
            lines=tuple(msg.address.lines),
            postal_code=msg.address.postal_code,
            city=msg.address.city,
            country=msg.address.country,
        ),
        bank_account=msg.bank_account,
        iban=msg.iban,
        bic=msg.bic,
        bankgiro=msg.bankgiro,
        plusgiro=msg.plusgiro,
        email=msg.email,
        phone=msg.phone,
        website=msg.website,
        logo=msg.logo,
        logo_media_type=msg.logo_media_type,
        accent_colour=msg.accent_colour or "#1F4E79",
        footer=msg.footer,
        payment_terms_days=msg.payment_terms_days or 14,
        ehf_attach_pdf=msg.ehf_attach_pdf,
        f_tax_approved=msg.f_tax_approved,
        version=msg.version,
    )


class DirectoryClient:
    """`TenantResolver` for every service but the ledger, and the creditor profiles they render."""

    def __init__(self, target: str, service_token: str, *, caller: str) -> None:
        self._target = target
        self._token = service_token
        self._caller = caller
        self._channel: grpc.aio.Channel | None = None
        self._stub: tenants_pb2_grpc.TenantDirectoryServiceAsyncStub | None = None
        self._keys: ExpiringLru[Tenant | None] = ExpiringLru(10_000)
        self._tenants: ExpiringLru[Tenant] = ExpiringLru(10_000)
        self._profiles: ExpiringLru[CreditorProfile] = ExpiringLru(2_000)

    def _directory(self) -> tenants_pb2_grpc.TenantDirectoryServiceAsyncStub:
        if self._stub is None:
            self._channel = grpc.aio.insecure_channel(self._target, options=_CHANNEL_OPTIONS)
            self._stub = tenants_pb2_grpc.TenantDirectoryServiceStub(self._channel)
        assert self._stub is not None
        return self._stub

    @property
    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return service_metadata(self._token, "", self._caller)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(grace=None)
            self._channel, self._stub = None, None

    async def resolve(self, api_key: str) -> Tenant | None:
        if len(api_key) > MAX_KEY_LENGTH:
            return None
        digest = hashlib.sha256(api_key.encode()).hexdigest()
        found, tenant = self._keys.get(digest)
        if found:
            return tenant
        try:
            reply = await self._directory().ResolveApiKey(
                tpb.ResolveApiKeyRequest(api_key=api_key), metadata=self._metadata, timeout=5
            )
            tenant = tenant_from_info(reply.tenant)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise DirectoryUnavailable(
                    f"the tenant directory did not answer ({error.code().name})"
                ) from None
            tenant = None
        self._keys.put(digest, tenant, KEY_SECONDS if tenant else UNKNOWN_SECONDS)
        return tenant

    async def by_id(self, tenant_id: str) -> Tenant | None:
        found, tenant = self._tenants.get(tenant_id)
        if found and tenant is not None:
            return tenant
        try:
            reply = await self._directory().GetTenant(
                tpb.GetTenantRequest(tenant_id=tenant_id), metadata=self._metadata, timeout=5
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise DirectoryUnavailable(f"the tenant directory did not answer ({error.code().name})") from None
        tenant = tenant_from_info(reply.tenant)
        self._tenants.put(tenant_id, tenant, TENANT_SECONDS)
        return tenant

    async def profile(self, tenant_id: str, version: int) -> CreditorProfile:
        """A version of the tenant's creditor profile (0: the current one, not cached)."""
        key = f"{tenant_id}:{version}"
        if version:
            found, cached = self._profiles.get(key)
            if found and cached is not None:
                return cached
        try:
            reply = await self._directory().GetTenantProfile(
                tpb.GetTenantProfileRequest(tenant_id=tenant_id, version=version),
                metadata=self._metadata,
                timeout=5,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise LookupError(f"tenant {tenant_id} has no profile version {version}") from None
            raise DirectoryUnavailable(f"the tenant directory did not answer ({error.code().name})") from None
        profile = profile_from_pb(reply.profile)
        if profile.version:
            self._profiles.put(f"{tenant_id}:{profile.version}", profile, PROFILE_SECONDS)
        return profile
