"""Each tenant's delivery rules: its own when it set them, else the defaults; read through a short
cache (a change reaches every replica within seconds)."""

from __future__ import annotations

import asyncio

from services.common.cache import ExpiringLru
from services.common.clock import Clock
from services.dispatcher.domain.rules import DEFAULT_RULES, DeliveryRules
from services.dispatcher.store import DispatcherStore

_SECONDS = 10.0


class RulesBook:
    def __init__(self, store: DispatcherStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._cache: ExpiringLru[DeliveryRules] = ExpiringLru(10_000)
        # The last rules read per tenant, for code that cannot wait (inside a transaction).
        self._last: dict[str, DeliveryRules] = {}
        # One read per tenant at a time: a batch planned at once asks for its tenant's rules together.
        self._reading: dict[str, asyncio.Future[DeliveryRules]] = {}

    async def get(self, tenant_id: str) -> DeliveryRules:
        found, rules = self._cache.get(tenant_id)
        if found and rules is not None:
            return rules
        reading = self._reading.get(tenant_id)
        if reading is None:
            reading = self._reading[tenant_id] = asyncio.ensure_future(self._read(tenant_id))
            reading.add_done_callback(lambda _: self._reading.pop(tenant_id, None))
        return await asyncio.shield(reading)

    async def _read(self, tenant_id: str) -> DeliveryRules:
        doc = await self._store.rules(tenant_id)
        rules = DeliveryRules.model_validate(doc["rules"]) if doc else DEFAULT_RULES
        self._cache.put(tenant_id, rules, _SECONDS)
        self._last[tenant_id] = rules
        return rules

    def last(self, tenant_id: str) -> DeliveryRules:
        return self._last.get(tenant_id, DEFAULT_RULES)

    async def own(self, tenant_id: str) -> DeliveryRules | None:
        doc = await self._store.rules(tenant_id)
        return DeliveryRules.model_validate(doc["rules"]) if doc else None

    async def set(self, tenant_id: str, rules: DeliveryRules) -> None:
        await self._store.set_rules(tenant_id, rules.model_dump(mode="json"), self._clock.now())
        self._cache.put(tenant_id, rules, _SECONDS)
        self._last[tenant_id] = rules
