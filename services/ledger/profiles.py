"""The creditor's profile, owned by the ledger: every version kept unchanged in `tenant_profiles`
(one document per tenant and version), the tenant document naming the current one
(`profile_version`). A change writes version n+1, moves the tenant to it and announces it
(TenantProfileChanged, through the outbox) in one transaction; input that changes nothing makes
no version. Invoices keep the version they were issued under, so a new logo never rewrites history.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any, Final

from pymongo.errors import DuplicateKeyError

from services.common.creditor import CreditorProfile, ProfileInput, check_profile, profile_input
from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from services.common.events import (
    TENANT_TOPIC,
    CreditorProfileData,
    ProfileAddress,
    TenantProfileChanged,
    TenantProfileChangedData,
)
from services.common.mongo import Doc, Session, in_transaction
from services.common.outbox import add_to_outbox
from services.common.tenancy import Tenant
from services.ledger.store import LedgerStore

# What an operator may change: every field of the input but the two that identify the creditor
# (the tenant's own; a tenant without an organisation number may be given one).
CHANGEABLE: Final = frozenset(f.name for f in fields(ProfileInput)) - {"jurisdiction"}
_ATTEMPTS: Final = 5
# A tenant made before profiles existed has no `profile_version`; one made since without a profile has 0.
_NO_PROFILE: Final = [{"profile_version": {"$exists": False}}, {"profile_version": 0}]


@dataclass(frozen=True)
class ProfileVersion:
    """One stored version and when it was made."""

    profile: CreditorProfile
    made_at: datetime | None


class _Raced(Exception):
    """Another writer made the same version first: read again and retry."""


def profile_doc(tenant_id: str, profile: CreditorProfile, now: datetime, actor: str) -> Doc:
    body = profile.model_dump(exclude={"version"})
    body["address"]["lines"] = list(profile.address.lines)
    return {
        "_id": f"{tenant_id}:{profile.version}",
        "tenant_id": tenant_id,
        "version": profile.version,
        "profile": body,
        "logo_sha256": profile.logo_sha256,
        "made_at": now,
        "made_by": actor,
    }


def profile_from_doc(doc: Doc) -> CreditorProfile:
    return CreditorProfile(**doc["profile"], version=doc["version"])


def event_data(tenant_id: str, profile: CreditorProfile) -> TenantProfileChangedData:
    """The profile as events carry it: everything but the logo's bytes."""
    body = profile.model_dump(exclude={"logo", "version", "address"})
    address = profile.address
    return TenantProfileChangedData(
        tenant_id=tenant_id,
        version=profile.version,
        profile=CreditorProfileData(
            **body,
            address=ProfileAddress(
                lines=list(address.lines),
                postal_code=address.postal_code,
                city=address.city,
                country=address.country,
            ),
            vat_id=profile.vat_id,
            in_enterprise_register=profile.in_enterprise_register,
            logo_sha256=profile.logo_sha256,
        ),
    )


def provisional_profile(tenant: Tenant) -> CreditorProfile:
    """What a tenant made before profiles existed shows until it has one: its name and number."""
    return CreditorProfile(
        legal_name=tenant.name, org_number=tenant.org_number, jurisdiction=tenant.jurisdiction, version=0
    )


async def current_version(store: LedgerStore, tenant_id: str, *, session: Session | None = None) -> int:
    """The tenant's current profile version (0: none yet, or no such tenant)."""
    doc = await store.tenants.find_one({"_id": tenant_id}, projection={"profile_version": 1}, session=session)
    return int(doc.get("profile_version", 0)) if doc else 0


async def profile_at(store: LedgerStore, tenant: Tenant, version: int = 0) -> ProfileVersion:
    """A version of the tenant's profile; 0: the current one (a provisional one when it has none).
    NotFound for a version the tenant never had."""
    if version < 0:
        raise InvalidArgument([FieldViolation("version", "must be 0 (the current one) or a version")])
    wanted = version or await current_version(store, tenant.id)
    if wanted == 0:
        return ProfileVersion(provisional_profile(tenant), None)
    doc = await store.profiles.find_one({"_id": f"{tenant.id}:{wanted}"})
    if doc is None or doc["tenant_id"] != tenant.id:
        raise NotFound(f"tenant {tenant.id} has no profile version {wanted}")
    return ProfileVersion(profile_from_doc(doc), doc.get("made_at"))


def _same(a: CreditorProfile, b: CreditorProfile) -> bool:
    return a.model_dump(exclude={"version"}) == b.model_dump(exclude={"version"})


async def add_version(
    store: LedgerStore,
    session: Session,
    tenant_id: str,
    profile: CreditorProfile,
    now: datetime,
    actor: str,
    *,
    announce: bool = True,
) -> None:
    """Store `profile` (numbered already) as the tenant's next version and announce it."""
    previous = profile.version - 1
    try:
        await store.profiles.insert_one(profile_doc(tenant_id, profile, now, actor), session=session)
    except DuplicateKeyError:
        raise _Raced from None
    current: Doc = {"profile_version": previous} if previous else {"$or": _NO_PROFILE}
    moved = await store.tenants.update_one(
        {"_id": tenant_id, **current},
        {"$set": {"profile_version": profile.version, "profile_updated_at": now}},
        session=session,
    )
    if moved.matched_count != 1:
        raise _Raced
    if not announce:
        return
    event = TenantProfileChanged(
        tenant_id=tenant_id, subject=tenant_id, occurred_at=now, data=event_data(tenant_id, profile)
    )
    await add_to_outbox(store.db, session, [(event, TENANT_TOPIC)])


async def change_profile(
    store: LedgerStore,
    tenant_id: str,
    changes: Mapping[str, Any],
    *,
    now: datetime,
    actor: str,
    on_commit: Callable[[], None] | None = None,
) -> tuple[CreditorProfile, bool]:
    """Apply `changes` (ProfileInput fields) to the tenant's current profile, or to a new one made
    from its name and number; returns the profile and whether a new version was made."""
    unknown = set(changes) - CHANGEABLE
    if unknown:
        raise InvalidArgument([FieldViolation(name, "cannot be changed") for name in sorted(unknown)])
    for _ in range(_ATTEMPTS):
        try:
            result = await in_transaction(
                store.client, lambda s: _change(store, s, tenant_id, changes, now, actor)
            )
        except _Raced:
            continue
        if result[1] and on_commit is not None:
            on_commit()
        return result
    raise FailedPrecondition(
        "the profile kept changing while we wrote; try again", reason="CONCURRENT_CHANGE"
    )


async def _change(
    store: LedgerStore, s: Session, tenant_id: str, changes: Mapping[str, Any], now: datetime, actor: str
) -> tuple[CreditorProfile, bool]:
    tenant = await store.tenants.find_one({"_id": tenant_id}, projection={"api_keys": 0}, session=s)
    if tenant is None:
        raise NotFound(f"no tenant {tenant_id}")
    settings = tenant["settings"]
    version = int(tenant.get("profile_version", 0))
    current = None
    if version:
        doc = await store.profiles.find_one({"_id": f"{tenant_id}:{version}"}, session=s)
        if doc is None:
            raise FailedPrecondition(f"tenant {tenant_id} names profile version {version}, which is missing")
        current = profile_from_doc(doc)
    base = (
        profile_input(current)
        if current is not None
        else ProfileInput(
            legal_name=tenant["name"],
            org_number=settings.get("org_number", ""),
            jurisdiction=settings.get("jurisdiction", "NO"),
        )
    )
    wanted = check_profile(replace(base, **changes))
    await _check_identity(store, s, tenant_id, settings, wanted)
    if current is not None and _same(current, wanted):
        return current, False
    new = wanted.model_copy(update={"version": version + 1})
    if not settings.get("org_number"):
        await store.tenants.update_one(
            {"_id": tenant_id}, {"$set": {"settings.org_number": new.org_number}}, session=s
        )
    await add_version(store, s, tenant_id, new, now, actor)
    return new, True


async def _check_identity(
    store: LedgerStore, s: Session, tenant_id: str, settings: Doc, profile: CreditorProfile
) -> None:
    """The profile is the tenant's: its organisation number (once it has one) does not change."""
    known = settings.get("org_number", "")
    if known and profile.org_number != known:
        raise InvalidArgument(
            [
                FieldViolation(
                    "org_number",
                    f"the tenant's organisation number is {known}; another number is another "
                    "creditor (create a tenant for it)",
                )
            ]
        )
    if not known:
        other = await store.tenants.find_one(
            {"settings.org_number": profile.org_number, "_id": {"$ne": tenant_id}},
            projection={"_id": 1},
            session=s,
        )
        if other is not None:
            raise InvalidArgument(
                [FieldViolation("org_number", f"a tenant with {profile.org_number} exists already")]
            )


async def create_with_profile(
    store: LedgerStore, tenant: Tenant, profile: CreditorProfile, *, now: datetime, actor: str
) -> CreditorProfile:
    """A new tenant and the first version of its profile, in one transaction."""
    first = profile.model_copy(update={"version": 1})

    async def work(s: Session) -> None:
        await store.create_tenant(tenant, now, session=s)
        await add_version(store, s, tenant.id, first, now, actor)

    await in_transaction(store.client, work)
    return first


async def ensure_profile(
    store: LedgerStore,
    tenant_id: str,
    given: ProfileInput,
    *,
    now: datetime,
    actor: str,
) -> bool:
    """Give the tenant this profile if it has none (an operator's profile is never overwritten);
    True when it was made now.

    A seed, not a change, so it is not announced: the development stack makes it at every start
    against a fresh database, and services ask the directory for the versions they meet.
    """
    if await current_version(store, tenant_id):
        return False
    profile = check_profile(given).model_copy(update={"version": 1})

    async def work(s: Session) -> None:
        # A tenant made without a number (an older sandbox) takes the profile's.
        await store.tenants.update_one(
            {"_id": tenant_id, "settings.org_number": ""},
            {"$set": {"settings.org_number": profile.org_number}},
            session=s,
        )
        await add_version(store, s, tenant_id, profile, now, actor, announce=False)

    try:
        await in_transaction(store.client, work)
    except _Raced:  # another replica (or an operator) was first
        return False
    return True
