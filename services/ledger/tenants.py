"""Resolving API keys and tenant ids to tenants, with a short cache (keys are looked up per call)."""

from __future__ import annotations

import time

from services.common.tenancy import Tenant
from services.ledger.store import LedgerStore, tenant_from_doc

CACHE_SECONDS = 30.0


class TenantDirectory:
    def __init__(self, store: LedgerStore) -> None:
        self._store = store
        self._by_key: dict[str, tuple[float, Tenant | None]] = {}
        self._by_id: dict[str, tuple[float, Tenant]] = {}

    async def resolve(self, api_key: str) -> Tenant | None:
        hit = self._by_key.get(api_key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        tenant = await self._store.tenant_by_key(api_key)
        # Unknown keys are cached briefly too, so a flood of bad keys does not reach the database.
        self._by_key[api_key] = (time.monotonic() + (CACHE_SECONDS if tenant else 2.0), tenant)
        return tenant

    async def by_id(self, tenant_id: str) -> Tenant | None:
        hit = self._by_id.get(tenant_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        doc = await self._store.tenants.find_one({"_id": tenant_id})
        if doc is None:
            return None
        tenant = tenant_from_doc(doc)
        self._by_id[tenant_id] = (time.monotonic() + CACHE_SECONDS, tenant)
        return tenant
