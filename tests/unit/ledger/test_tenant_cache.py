"""The API-key cache stays bounded under a flood of unknown keys, and still answers known keys."""

from __future__ import annotations

import secrets
from typing import Any

from services.common.tenancy import Tenant, hash_api_key
from services.ledger import tenants
from services.ledger.tenants import TenantDirectory


class _Store:
    def __init__(self) -> None:
        self.lookups = 0
        self.known = {hash_api_key("good-key"): Tenant(id="t1", name="Test AS")}

    async def tenant_by_key(self, api_key: str) -> Tenant | None:
        self.lookups += 1
        return self.known.get(hash_api_key(api_key))


async def test_thirty_thousand_random_keys_keep_the_cache_bounded() -> None:
    store = _Store()
    directory = TenantDirectory(store)  # type: ignore[arg-type]

    for _ in range(30_000):
        assert await directory.resolve(secrets.token_urlsafe(24)) is None
    tenant = await directory.resolve("good-key")

    assert directory.cached_keys <= tenants.MAX_KEYS
    assert tenant is not None
    assert tenant.id == "t1"
    lookups = store.lookups
    assert await directory.resolve("good-key") == tenant
    assert store.lookups == lookups  # served from the cache


async def test_a_huge_bearer_token_is_refused_without_a_lookup() -> None:
    store: Any = _Store()
    directory = TenantDirectory(store)
    assert await directory.resolve("k" * 100_000) is None
    assert store.lookups == 0
