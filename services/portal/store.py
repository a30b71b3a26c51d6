"""The portal's own database: sessions, console accounts and the audit log. Never business data:
invoices, customers, messages and disputes live with the services that own them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry import trace
from pymongo import ASCENDING, DESCENDING

from services.common.ids import new_id
from services.common.mongo import Database, Doc

SESSIONS = "sessions"
CONSOLE_ACCOUNTS = "console_accounts"
AUDIT = "audit"
# Failed console logins per account and per address, while they count (the login rate limit).
LOGIN_ATTEMPTS = "login_attempts"


@dataclass(frozen=True)
class CustomerSession:
    """A customer on one invoice's page: which invoice of which tenant, and its forms' CSRF token."""

    id: str
    tenant_id: str
    invoice_id: str
    csrf: str
    expires_at: datetime


class PortalStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def ensure_indexes(self) -> None:
        # MongoDB removes a session once it has expired (the portal checks the time as well).
        await self.db[SESSIONS].create_index([("expires_at", ASCENDING)], expireAfterSeconds=0)
        await self.db[CONSOLE_ACCOUNTS].create_index([("email", ASCENDING)], unique=True)
        await self.db[AUDIT].create_index([("at", DESCENDING)])
        await self.db[AUDIT].create_index([("tenant_id", ASCENDING), ("at", DESCENDING)])
        await self.db[LOGIN_ATTEMPTS].create_index([("expires_at", ASCENDING)], expireAfterSeconds=0)

    # --- customer sessions ----------------------------------------------------------------------

    async def open_customer_session(
        self, tenant_id: str, invoice_id: str, *, now: datetime, hours: float
    ) -> CustomerSession:
        session = CustomerSession(
            id=secrets.token_urlsafe(32),
            tenant_id=tenant_id,
            invoice_id=invoice_id,
            csrf=secrets.token_urlsafe(32),
            expires_at=now + timedelta(hours=hours),
        )
        await self.db[SESSIONS].insert_one(
            {
                "_id": session.id,
                "kind": "customer",
                "tenant_id": tenant_id,
                "invoice_id": invoice_id,
                "csrf": session.csrf,
                "created_at": now,
                "expires_at": session.expires_at,
            }
        )
        return session

    async def customer_session(
        self, session_id: str, invoice_id: str, *, now: datetime
    ) -> CustomerSession | None:
        """The session, when it is this invoice's and has not expired."""
        if not session_id:
            return None
        doc = await self.db[SESSIONS].find_one(
            {"_id": session_id, "kind": "customer", "invoice_id": invoice_id}
        )
        if doc is None or _aware(doc["expires_at"]) <= now:
            return None
        return CustomerSession(
            id=doc["_id"],
            tenant_id=doc["tenant_id"],
            invoice_id=doc["invoice_id"],
            csrf=doc["csrf"],
            expires_at=_aware(doc["expires_at"]),
        )

    # --- audit ----------------------------------------------------------------------------------

    async def audit(
        self, *, tenant_id: str, actor: str, action: str, subject: str, now: datetime, **details: Any
    ) -> None:
        """Who did what to which invoice or customer (what a customer or an operator asked for), and
        the trace of the request that did it."""
        context = trace.get_current_span().get_span_context()
        doc: Doc = {
            "_id": new_id(),
            "at": now,
            "tenant_id": tenant_id,
            "actor": actor,
            "action": action,
            "subject": subject,
            "details": details,
            "trace_id": format(context.trace_id, "032x") if context.is_valid else "",
        }
        await self.db[AUDIT].insert_one(doc)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
