"""The tenant directory for Fordring's own services: `fordring.ledger.v1.TenantDirectoryService`.

Other services resolve their callers' API keys, tenants and creditor profile versions here
(through services/common/directory.py), so a key works on every service's API and a revoked key
stops working everywhere. Callers authenticate as services, not as tenants: the server this is
registered on decides who may call it.
"""

from __future__ import annotations

from typing import Any

import grpc
from fordring.ledger.v1 import tenants_pb2 as tpb
from fordring.ledger.v1 import tenants_pb2_grpc
from typing_extensions import override

from services.common.errors import FieldViolation, InvalidArgument, NotFound, Violations
from services.common.tenancy import Tenant
from services.common.text import check_text
from services.ledger.convert import profile_to_pb
from services.ledger.profiles import current_version, profile_at
from services.ledger.store import LedgerStore
from services.ledger.tenants import MAX_KEY_LENGTH, TenantDirectory

Context = grpc.aio.ServicerContext[Any, Any]
SERVICE_NAME = tpb.DESCRIPTOR.services_by_name["TenantDirectoryService"].full_name
MAX_TENANT_ID = 128


def tenant_info(tenant: Tenant, profile_version: int) -> tpb.TenantInfo:
    return tpb.TenantInfo(
        id=tenant.id,
        name=tenant.name,
        key_name=tenant.key_name,
        jurisdiction=tenant.jurisdiction,
        default_currency=tenant.default_currency,
        org_number=tenant.org_number,
        kid_scheme=tenant.kid_scheme,
        kid_length=tenant.kid_length,
        invoice_number_start=tenant.invoice_number_start,
        credit_note_prefix=tenant.credit_note_prefix,
        timezone=tenant.timezone,
        profile_version=profile_version,
    )


class TenantDirectoryApi(tenants_pb2_grpc.TenantDirectoryServiceServicer):
    def __init__(self, store: LedgerStore, tenants: TenantDirectory) -> None:
        self._store = store
        self._tenants = tenants

    async def _info(self, tenant: Tenant) -> tpb.TenantInfo:
        # Read fresh: the tenant itself is cached for seconds, its profile version must not lag.
        return tenant_info(tenant, await current_version(self._store, tenant.id))

    async def _tenant(self, tenant_id: str) -> Tenant:
        v = Violations()
        if not tenant_id:
            v.add("tenant_id", "required")
        check_text(tenant_id, "tenant_id", MAX_TENANT_ID, v)
        v.raise_if_any()
        tenant = await self._tenants.by_id(tenant_id)
        if tenant is None:
            raise NotFound(f"no tenant {tenant_id}")
        return tenant

    @override
    async def ResolveApiKey(
        self, request: tpb.ResolveApiKeyRequest, context: Context
    ) -> tpb.ResolveApiKeyResponse:
        if not request.api_key:
            raise InvalidArgument([FieldViolation("api_key", "required")])
        # Never echo the key: it is a credential.
        tenant = (
            await self._tenants.resolve(request.api_key) if len(request.api_key) <= MAX_KEY_LENGTH else None
        )
        if tenant is None:
            raise NotFound("unknown or revoked API key")
        return tpb.ResolveApiKeyResponse(tenant=await self._info(tenant))

    @override
    async def GetTenant(self, request: tpb.GetTenantRequest, context: Context) -> tpb.GetTenantResponse:
        tenant = await self._tenant(request.tenant_id)
        return tpb.GetTenantResponse(tenant=await self._info(tenant))

    @override
    async def GetTenantProfile(
        self, request: tpb.GetTenantProfileRequest, context: Context
    ) -> tpb.GetTenantProfileResponse:
        tenant = await self._tenant(request.tenant_id)
        found = await profile_at(self._store, tenant, request.version)
        return tpb.GetTenantProfileResponse(profile=profile_to_pb(found.profile, found.made_at))
