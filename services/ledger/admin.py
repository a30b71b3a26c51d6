"""Operating the ledger: tenants (creditors) and their API keys.

    python -m services.ledger tenants create --name "Fjordbris AS" --org-number 974760673 [--key-name erp]
    python -m services.ledger tenants add-key TENANT_ID --key-name erp-2
    python -m services.ledger tenants revoke-key TENANT_ID --key-name erp
    python -m services.ledger tenants list
    python -m services.ledger outbox status|unpark|replay    (see services/common/outbox_admin.py)

Uses the same FORDRING_* settings as the ledger (FORDRING_MONGO_URI, FORDRING_MONGO_DATABASE).
A key is shown once, when it is made; the ledger keeps only its SHA-256. A revoked key stops
working on running replicas within 30 seconds (their key cache).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from stdnum.no import orgnr as no_orgnr
from stdnum.se import orgnr as se_orgnr

from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound, Violations
from services.common.ids import new_id
from services.common.money import UnknownCurrency, check_currency
from services.common.mongo import create_mongo_client
from services.common.outbox_admin import add_outbox_commands, run_outbox_command
from services.common.settings import load
from services.common.tenancy import Tenant
from services.ledger.settings import LedgerSettings
from services.ledger.store import LedgerStore


@dataclass(frozen=True)
class NewTenant:
    name: str
    org_number: str
    jurisdiction: Literal["NO", "SE"] = "NO"
    kid_scheme: Literal["mod10", "mod11"] = "mod10"
    kid_length: int = 10
    currency: str = "NOK"


def new_api_key() -> str:
    return "fdr_" + secrets.token_urlsafe(32)


def check_new_tenant(t: NewTenant) -> Tenant:
    v = Violations()
    if not t.name.strip():
        v.add("name", "required")
    validator = se_orgnr if t.jurisdiction == "SE" else no_orgnr
    if not validator.is_valid(t.org_number):
        v.add("org_number", f"{t.org_number!r} is not a valid {t.jurisdiction} organisation number")
    if not 4 <= t.kid_length <= 25:
        v.add("kid_length", "must be 4..25 (Nets: a KID is 4-25 digits)")
    try:
        check_currency(t.currency)
    except UnknownCurrency as exc:
        v.add("currency", str(exc))
    v.raise_if_any()
    return Tenant(
        id=new_id(),
        name=t.name.strip(),
        jurisdiction=t.jurisdiction,
        org_number=str(validator.compact(t.org_number)),
        kid_scheme=t.kid_scheme,
        kid_length=t.kid_length,
        default_currency=t.currency,
        timezone="Europe/Stockholm" if t.jurisdiction == "SE" else "Europe/Oslo",
    )


async def create_tenant(
    store: LedgerStore, new: NewTenant, key_name: str, now: datetime
) -> tuple[Tenant, str]:
    """Create a tenant and its first API key; returns both (the key is never stored in clear)."""
    tenant = check_new_tenant(new)
    if await store.tenants.find_one({"settings.org_number": tenant.org_number}) is not None:
        raise InvalidArgument(
            [FieldViolation("org_number", f"a tenant with {tenant.org_number} exists already")]
        )
    await store.create_tenant(tenant, now)
    return tenant, await add_key(store, tenant.id, key_name, now)


async def add_key(store: LedgerStore, tenant_id: str, key_name: str, now: datetime) -> str:
    if await store.tenants.find_one({"_id": tenant_id}) is None:
        raise NotFound(f"no tenant {tenant_id}")
    api_key = new_api_key()
    if not await store.add_api_key(tenant_id, api_key, key_name, now):
        raise FailedPrecondition(f"tenant {tenant_id} has a key named {key_name!r} already")
    return api_key


async def revoke_key(store: LedgerStore, tenant_id: str, key_name: str) -> None:
    if not await store.revoke_api_key(tenant_id, key_name):
        raise NotFound(f"tenant {tenant_id} has no key named {key_name!r}")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m services.ledger", description="Run or operate the ledger.")
    areas = root.add_subparsers(dest="area")
    tenants = areas.add_parser("tenants", help="creditors and their API keys").add_subparsers(dest="command")
    create = tenants.add_parser("create", help="a new tenant with its first API key")
    create.add_argument("--name", required=True)
    create.add_argument("--org-number", required=True)
    create.add_argument("--jurisdiction", choices=["NO", "SE"], default="NO")
    create.add_argument("--kid-scheme", choices=["mod10", "mod11"], default="mod10")
    create.add_argument("--kid-length", type=int, default=10)
    create.add_argument("--currency", default="NOK")
    create.add_argument("--key-name", default="erp")
    for name, text in (
        ("add-key", "another API key (e.g. to rotate)"),
        ("revoke-key", "withdraw an API key"),
    ):
        command = tenants.add_parser(name, help=text)
        command.add_argument("tenant_id")
        command.add_argument("--key-name", required=True)
    tenants.add_parser("list", help="every tenant with its key names")
    add_outbox_commands(areas)
    return root


async def run(args: argparse.Namespace, settings: LedgerSettings) -> int:
    client = create_mongo_client(settings.mongo_uri, app_name="fordring-ledger-admin")
    store = LedgerStore(client, settings.mongo_database)
    now = datetime.now(UTC)
    try:
        if args.area == "outbox":
            return await run_outbox_command(args, store.db)
        if args.command == "create":
            new = NewTenant(
                args.name, args.org_number, args.jurisdiction, args.kid_scheme, args.kid_length, args.currency
            )
            tenant, key = await create_tenant(store, new, args.key_name, now)
            print(f"tenant {tenant.id} ({tenant.name}, {tenant.org_number})\napi key {args.key_name}: {key}")
            print("The key is shown only now: give it to the ERP as `authorization: Bearer <key>`.")
        elif args.command == "add-key":
            print(f"api key {args.key_name}: {await add_key(store, args.tenant_id, args.key_name, now)}")
        elif args.command == "revoke-key":
            await revoke_key(store, args.tenant_id, args.key_name)
            print(f"revoked {args.key_name} of {args.tenant_id} (running replicas forget it within 30 s)")
        else:
            async for doc in store.tenants.find({}, sort=[("created_at", 1)]):
                keys = ", ".join(k["name"] for k in doc["api_keys"]) or "no keys"
                print(f"{doc['_id']}  {doc['name']}  {doc['settings'].get('org_number', '')}  keys: {keys}")
    except (InvalidArgument, NotFound, FailedPrecondition) as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    finally:
        await client.close()
    return 0


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.area not in ("tenants", "outbox") or args.command is None:
        parser().print_help()
        return 2
    return asyncio.run(run(args, load(LedgerSettings)))
