"""Console accounts: an e-mail address, an argon2id hash of the password, and a role per tenant.
An account may serve several tenants (a bureau's customer service); each session acts for one."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from services.common.ids import new_id
from services.common.mongo import Database, Doc
from services.portal.store import CONSOLE_ACCOUNTS

Role = Literal["customer_service", "operator", "admin"]
ROLES: Final[tuple[Role, ...]] = ("customer_service", "operator", "admin")
MIN_PASSWORD: Final = 12
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# argon2id with the library's defaults (RFC 9106's second recommended option, 64 MiB).
_hasher = PasswordHasher()
# Checked against when the account does not exist, so a wrong address costs what a wrong password does.
_NOBODY: Final = _hasher.hash("no such account: the time of a real check")


class AccountError(ValueError):
    """An account that cannot be made as asked (the message says why)."""


def allows(role: str, needed: Role) -> bool:
    """Customer service < operator < admin: each may do what the ones before may."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


@dataclass(frozen=True)
class Account:
    id: str
    email: str
    name: str
    # tenant id → role
    roles: dict[str, str]


def _account(doc: Doc) -> Account:
    return Account(
        id=doc["_id"],
        email=doc["email"],
        name=doc.get("name", ""),
        roles={g["tenant_id"]: g["role"] for g in doc.get("grants", [])},
    )


def normalise_email(email: str) -> str:
    return email.strip().lower()


class Accounts:
    def __init__(self, db: Database) -> None:
        self.collection = db[CONSOLE_ACCOUNTS]

    async def add(
        self, email: str, password: str, *, tenant_id: str, role: str, name: str, now: datetime
    ) -> Account:
        """A new account, or the existing one given `role` on `tenant_id` and this password."""
        address = normalise_email(email)
        if not _EMAIL.match(address):
            raise AccountError(f"{email!r} is not an e-mail address")
        if role not in ROLES:
            raise AccountError(f"role must be one of {', '.join(ROLES)}")
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
        if not tenant_id:
            raise AccountError("an account acts for a tenant")
        digest = await asyncio.to_thread(_hasher.hash, password)
        existing = await self.collection.find_one({"email": address})
        if existing is None:
            doc: Doc = {
                "_id": new_id(),
                "email": address,
                "name": name or address,
                "password_hash": digest,
                "grants": [{"tenant_id": tenant_id, "role": role}],
                "created_at": now,
                "updated_at": now,
            }
            await self.collection.insert_one(doc)
            return _account(doc)
        grants = [g for g in existing.get("grants", []) if g["tenant_id"] != tenant_id]
        grants.append({"tenant_id": tenant_id, "role": role})
        update: Doc = {"password_hash": digest, "grants": grants, "updated_at": now}
        if name:
            update["name"] = name
        await self.collection.update_one({"_id": existing["_id"]}, {"$set": update})
        return _account({**existing, **update})

    async def check(self, email: str, password: str) -> Account | None:
        """The account, when the password is its own (rehashed when the parameters have changed)."""
        doc = await self.collection.find_one({"email": normalise_email(email)})
        digest = doc["password_hash"] if doc else _NOBODY
        try:
            await asyncio.to_thread(_hasher.verify, digest, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if doc is None or doc.get("disabled"):
            return None
        if _hasher.check_needs_rehash(digest):
            rehashed = await asyncio.to_thread(_hasher.hash, password)
            await self.collection.update_one({"_id": doc["_id"]}, {"$set": {"password_hash": rehashed}})
        return _account(doc)

    async def get(self, account_id: str) -> Account | None:
        doc = await self.collection.find_one({"_id": account_id})
        return None if doc is None or doc.get("disabled") else _account(doc)
