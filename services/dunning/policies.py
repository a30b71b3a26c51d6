"""The tenants' policies: the lawful default per jurisdiction and debtor kind until an operator saves
one; a saved policy is checked against the law first (refused whole, naming every rule it breaks) and
versioned. Replicas cache them for a few seconds; saving one makes every open case of that kind be
decided again under it."""

from __future__ import annotations

import time as monotonic
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from pymongo.errors import DuplicateKeyError

from services.common.clock import Clock
from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument
from services.common.mongo import Doc
from services.dunning.domain.calendar import TIMEZONES
from services.dunning.domain.law import DebtorKind, Jurisdiction
from services.dunning.domain.policy import Policy, check, default_policy, parse_policy
from services.dunning.store import DunningStore, policy_id

JURISDICTIONS: tuple[Jurisdiction, ...] = ("NO", "SE")
DEBTOR_KINDS: tuple[DebtorKind, ...] = ("consumer", "business")
_CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class StoredPolicy:
    policy: Policy
    is_default: bool
    version: int = 0
    updated_at: datetime | None = None
    updated_by: str = ""


def jurisdiction_of(text: str) -> Jurisdiction:
    value = text.strip().upper()
    if value == "NO":
        return "NO"
    if value == "SE":
        return "SE"
    raise _invalid("jurisdiction", f"expected NO or SE, got {text!r}")


def debtor_kind_of(text: str) -> DebtorKind:
    value = text.strip().lower()
    if value == "consumer":
        return "consumer"
    if value == "business":
        return "business"
    raise _invalid("debtor_kind", f"expected consumer or business, got {text!r}")


class PolicyBook:
    def __init__(self, store: DunningStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._cache: dict[str, tuple[float, StoredPolicy]] = {}

    async def get(self, tenant_id: str, jurisdiction: Jurisdiction, kind: DebtorKind) -> StoredPolicy:
        key = policy_id(tenant_id, jurisdiction, kind)
        cached = self._cache.get(key)
        if cached is not None and monotonic.monotonic() - cached[0] < _CACHE_SECONDS:
            return cached[1]
        doc = await self._store.policies.find_one({"_id": key})
        stored = (
            StoredPolicy(default_policy(jurisdiction, kind, tenant_id), is_default=True)
            if doc is None
            else _stored(doc)
        )
        self._cache[key] = (monotonic.monotonic(), stored)
        return stored

    async def all(self, tenant_id: str) -> list[StoredPolicy]:
        return [await self.get(tenant_id, j, k) for j in JURISDICTIONS for k in DEBTOR_KINDS]

    def parse(self, tenant_id: str, text: str) -> Policy:
        """A policy from an operator's JSON, checked against the law on today's date."""
        if not text.strip():
            raise _invalid("policy_json", "required")
        policy = parse_policy(text)
        if policy.tenant_id and policy.tenant_id != tenant_id:
            raise _invalid("tenant_id", "the policy names another tenant")
        return policy.model_copy(update={"tenant_id": tenant_id})

    async def set(self, tenant_id: str, text: str, *, expected_version: int, actor: str) -> StoredPolicy:
        policy = self.parse(tenant_id, text)
        today = self._clock.now().astimezone(TIMEZONES[policy.jurisdiction]).date()
        check(policy, today)
        key = policy_id(tenant_id, policy.jurisdiction, policy.debtor_kind)
        now = self._clock.now()
        current = await self._store.policies.find_one({"_id": key}, projection={"version": 1})
        version = int(current["version"]) if current else 0
        if expected_version and expected_version != version:
            raise FailedPrecondition(
                f"the policy is at version {version}, not {expected_version}: someone saved it meanwhile",
                reason="VERSION_MISMATCH",
            )
        doc: Doc = {
            "tenant_id": tenant_id,
            "jurisdiction": policy.jurisdiction,
            "debtor_kind": policy.debtor_kind,
            "policy": policy.model_dump(mode="json"),
            "version": version + 1,
            "updated_at": now,
            "updated_by": actor,
        }
        if current is None:
            try:
                await self._store.policies.insert_one({"_id": key, **doc})
            except DuplicateKeyError:
                raise FailedPrecondition(
                    "the policy was saved meanwhile; read it again", reason="VERSION_MISMATCH"
                ) from None
        else:
            result = await self._store.policies.update_one({"_id": key, "version": version}, {"$set": doc})
            if result.matched_count == 0:
                raise FailedPrecondition(
                    "the policy was saved meanwhile; read it again", reason="VERSION_MISMATCH"
                )
        stored = StoredPolicy(policy, False, version + 1, now, actor)
        self._cache[key] = (monotonic.monotonic(), stored)
        return stored


def _invalid(field: str, description: str) -> InvalidArgument:
    return InvalidArgument([FieldViolation(field, description)])


def _stored(doc: Doc) -> StoredPolicy:
    return StoredPolicy(
        Policy.model_validate(doc["policy"]),
        is_default=False,
        version=int(doc["version"]),
        updated_at=doc.get("updated_at"),
        updated_by=doc.get("updated_by", ""),
    )


def zone(jurisdiction: Jurisdiction) -> ZoneInfo:
    return TIMEZONES[jurisdiction]
