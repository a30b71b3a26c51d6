"""Resolving API keys and tenant ids to tenants, with a short, bounded cache (keys are looked up per call).

The cache holds key digests, never keys, and at most MAX_KEYS of them: a flood of random keys
costs a bounded amount of memory (the oldest entries go first) and each unknown key reaches the
database at most once every UNKNOWN_SECONDS.
"""

from __future__ import annotations

from services.common.cache import ExpiringLru
from services.common.tenancy import Tenant, hash_api_key
from services.ledger.store import LedgerStore, tenant_from_doc

CACHE_SECONDS = 30.0
UNKNOWN_SECONDS = 2.0
MAX_KEYS = 10_000
MAX_TENANTS = 10_000
# A longer bearer token is no key of ours: refused without a lookup.
MAX_KEY_LENGTH = 256


class TenantDirectory:
    def __init__(self, store: LedgerStore) -> None:
        self._store = store
        self._by_key: ExpiringLru[Tenant | None] = ExpiringLru(MAX_KEYS)
        self._by_id: ExpiringLru[Tenant] = ExpiringLru(MAX_TENANTS)

    @property
    def cached_keys(self) -> int:
        return len(self._by_key)

    async def resolve(self, api_key: str) -> Tenant | None:
        if len(api_key) > MAX_KEY_LENGTH:
            return None
        digest = hash_api_key(api_key)
        found, tenant = self._by_key.get(digest)
        if found:
            return tenant
        tenant = await self._store.tenant_by_key(api_key)
        # Unknown keys are cached briefly too, so a repeated bad key does not reach the database.
        self._by_key.put(digest, tenant, CACHE_SECONDS if tenant else UNKNOWN_SECONDS)
        return tenant

    async def by_id(self, tenant_id: str) -> Tenant | None:
        found, tenant = self._by_id.get(tenant_id)
        if found and tenant is not None:
            return tenant
        doc = await self._store.tenants.find_one({"_id": tenant_id})
        if doc is None:
            return None
        tenant = tenant_from_doc(doc)
        self._by_id.put(tenant_id, tenant, CACHE_SECONDS)
        return tenant
