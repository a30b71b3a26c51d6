"""Console sessions (the cookie holds a random token; the database only its SHA-256) with the CSRF
token of their forms, and the login rate limit per account and per address."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pymongo import ReturnDocument

from services.common.mongo import Database
from services.portal.console.accounts import Account
from services.portal.store import LOGIN_ATTEMPTS, SESSIONS


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ConsoleSession:
    token: str
    account_id: str
    email: str
    name: str
    tenant_id: str
    role: str
    # Every tenant the account may switch to, with its role there.
    roles: dict[str, str]
    csrf: str
    expires_at: datetime


class ConsoleSessions:
    def __init__(self, db: Database, *, hours: float) -> None:
        self.sessions = db[SESSIONS]
        self.attempts = db[LOGIN_ATTEMPTS]
        self.hours = hours

    async def open(self, account: Account, tenant_id: str, *, now: datetime) -> ConsoleSession:
        token = secrets.token_urlsafe(32)
        session = ConsoleSession(
            token=token,
            account_id=account.id,
            email=account.email,
            name=account.name,
            tenant_id=tenant_id,
            role=account.roles[tenant_id],
            roles=dict(account.roles),
            csrf=secrets.token_urlsafe(32),
            expires_at=now + timedelta(hours=self.hours),
        )
        await self.sessions.insert_one(
            {
                "_id": _digest(token),
                "kind": "console",
                "account_id": account.id,
                "email": account.email,
                "name": account.name,
                "tenant_id": tenant_id,
                "roles": [{"tenant_id": t, "role": r} for t, r in account.roles.items()],
                "csrf": session.csrf,
                "created_at": now,
                "expires_at": session.expires_at,
            }
        )
        return session

    async def find(self, token: str, *, now: datetime) -> ConsoleSession | None:
        if not token:
            return None
        doc = await self.sessions.find_one({"_id": _digest(token), "kind": "console"})
        if doc is None or _aware(doc["expires_at"]) <= now:
            return None
        roles = {g["tenant_id"]: g["role"] for g in doc["roles"]}
        return ConsoleSession(
            token=token,
            account_id=doc["account_id"],
            email=doc["email"],
            name=doc.get("name", ""),
            tenant_id=doc["tenant_id"],
            role=roles.get(doc["tenant_id"], ""),
            roles=roles,
            csrf=doc["csrf"],
            expires_at=_aware(doc["expires_at"]),
        )

    async def switch(self, session: ConsoleSession, tenant_id: str) -> None:
        await self.sessions.update_one({"_id": _digest(session.token)}, {"$set": {"tenant_id": tenant_id}})

    async def close(self, token: str) -> None:
        await self.sessions.delete_one({"_id": _digest(token), "kind": "console"})

    # --- the login rate limit ------------------------------------------------------------------

    async def blocked(self, limits: dict[str, int], *, now: datetime) -> bool:
        """Whether any key ("account:<email>", "ip:<address>") failed its limit's times lately."""
        async for doc in self.attempts.find({"_id": {"$in": list(limits)}}):
            if doc["failures"] >= limits[doc["_id"]] and _aware(doc["expires_at"]) > now:
                return True
        return False

    async def failed(self, keys: list[str], *, window: timedelta, now: datetime) -> None:
        for key in keys:
            doc = await self.attempts.find_one_and_update(
                {"_id": key},
                {"$inc": {"failures": 1}, "$setOnInsert": {"expires_at": now + window}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None and _aware(doc["expires_at"]) <= now:
                # A window that had passed (before MongoDB removed it): this failure starts a new one.
                await self.attempts.update_one(
                    {"_id": key}, {"$set": {"failures": 1, "expires_at": now + window}}
                )

    async def succeeded(self, key: str) -> None:
        await self.attempts.delete_one({"_id": key})
