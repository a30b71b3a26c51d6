"""Operating the ledger: tenants (creditors), their API keys and their creditor profiles.

    python -m services.ledger tenants create --name "Fjordbris AS" --org-number 974760673 [--key-name erp]
        [--company-form AS --address-line "Storgata 1" --postal-code 0155 --city Oslo
         --bank-account 8601.11.17947 --email faktura@fjordbris.no --logo logo.svg ...]
    python -m services.ledger tenants update TENANT_ID [--iban ... --logo new.png ...]
    python -m services.ledger tenants show TENANT_ID [--version N]
    python -m services.ledger tenants add-key TENANT_ID --key-name erp-2
    python -m services.ledger tenants revoke-key TENANT_ID --key-name erp
    python -m services.ledger tenants list
    python -m services.ledger outbox status|unpark|replay    (see services/common/outbox_admin.py)

Uses the same FORDRING_* settings as the ledger (FORDRING_MONGO_URI, FORDRING_MONGO_DATABASE).
A key is shown once, when it is made; the ledger keeps only its SHA-256. A revoked key stops
working on running replicas within 30 seconds (their key cache).

The profile is what documents show of the creditor (services/common/creditor.py). `create` makes
its first version when any profile option is given; `update` changes only the options given and
makes a new version (invoices keep the version they were issued under); running replicas announce
it (TenantProfileChanged) as soon as their outbox relay sees it.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from stdnum.no import kontonr
from stdnum.no import orgnr as no_orgnr
from stdnum.se import orgnr as se_orgnr

from services.common.creditor import MAX_LOGO_BYTES, CreditorProfile, ProfileInput, check_profile
from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound, Violations
from services.common.ids import new_id
from services.common.money import UnknownCurrency, check_currency
from services.common.mongo import create_mongo_client
from services.common.outbox_admin import add_outbox_commands, run_outbox_command
from services.common.settings import load
from services.common.tenancy import Tenant
from services.ledger.profiles import ProfileVersion, change_profile, create_with_profile, profile_at
from services.ledger.settings import LedgerSettings
from services.ledger.store import LedgerStore, tenant_from_doc

ACTOR: Final = "operator"
# The options that set a profile field (argparse dest = the ProfileInput field).
PROFILE_FIELDS: Final = (
    "legal_name",
    "company_form",
    "address_lines",
    "postal_code",
    "city",
    "country",
    "bank_account",
    "iban",
    "bic",
    "bankgiro",
    "plusgiro",
    "email",
    "phone",
    "website",
    "accent_colour",
    "footer",
    "payment_terms_days",
    "ehf_attach_pdf",
    "f_tax_approved",
    "vat_registered",
)
# Fields named in errors, by the option that sets them.
_OPTIONS: Final = {
    "name": "--name",
    "org_number": "--org-number",
    "kid_length": "--kid-length",
    "currency": "--currency",
    "jurisdiction": "--jurisdiction",
    "address.lines": "--address-line",
    "address.postal_code": "--postal-code",
    "address.city": "--city",
    "address.country": "--country",
    "payment_terms_days": "--payment-terms",
    "vat_registered": "--not-vat-registered",
    "payment_means": "--bank-account/--iban (NO), --bankgiro/--plusgiro/--iban (SE)",
    "profile": "tenants update",
}


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


def check_new_profile(
    new: NewTenant, changes: Mapping[str, Any]
) -> tuple[CreditorProfile | None, list[FieldViolation]]:
    """The first version of a new tenant's profile, or what is wrong with it. Its legal name is the
    tenant's name unless given; its number and jurisdiction are the tenant's (check_new_tenant
    reports those, so they are not reported twice)."""
    base = ProfileInput(legal_name=new.name, org_number=new.org_number, jurisdiction=new.jurisdiction)
    try:
        return check_profile(replace(base, **changes)), []
    except InvalidArgument as exc:
        own = {"org_number", "jurisdiction"} | ({"legal_name"} if "legal_name" not in changes else set())
        return None, [v for v in exc.violations if v.field not in own]


async def create_tenant(
    store: LedgerStore,
    new: NewTenant,
    key_name: str,
    now: datetime,
    profile: Mapping[str, Any] | None = None,
) -> tuple[Tenant, str, CreditorProfile | None]:
    """Create a tenant, the first version of its profile (when `profile` holds any field) and its
    first API key; returns them (the key is never stored in clear). Every wrong field at once."""
    problems: list[FieldViolation] = []
    tenant: Tenant | None = None
    checked: CreditorProfile | None = None
    try:
        tenant = check_new_tenant(new)
    except InvalidArgument as exc:
        problems.extend(exc.violations)
    if profile:
        checked, wrong = check_new_profile(new, profile)
        problems.extend(wrong)
    if problems:
        raise InvalidArgument(problems)
    assert tenant is not None
    if await store.tenants.find_one({"settings.org_number": tenant.org_number}) is not None:
        raise InvalidArgument(
            [FieldViolation("org_number", f"a tenant with {tenant.org_number} exists already")]
        )
    made = None
    if checked is not None:
        made = await create_with_profile(store, tenant, checked, now=now, actor=ACTOR)
    else:
        await store.create_tenant(tenant, now)
    return tenant, await add_key(store, tenant.id, key_name, now), made


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


def _add_profile_options(command: argparse.ArgumentParser, *, update: bool) -> None:
    profile = command.add_argument_group(
        "creditor profile" + (" (only the options given change)" if update else " (what documents show)")
    )
    add = profile.add_argument
    if update:
        add("--org-number", help="only for a tenant that has none yet")
    add("--legal-name", help="the name in the register" + ("" if update else " (default: --name)"))
    add("--company-form", help="NO: AS, ASA, NUF, ENK, DA, ANS, SA, …; SE: AB, HB, KB, EF, …")
    add("--address-line", dest="address_lines", action="append", metavar="LINE", help="repeat for more lines")
    add("--postal-code")
    add("--city")
    add("--country", help="ISO 3166-1 alpha-2 (default: the jurisdiction)")
    add("--bank-account", help="Norwegian account number (11 digits)")
    add("--iban")
    add("--bic")
    add("--bankgiro", help="Swedish bankgiro number, e.g. 5050-1055")
    add("--plusgiro", help="Swedish plusgiro number")
    add("--email", help="contact e-mail shown on documents")
    add("--phone", help="contact phone, e.g. +4722334455")
    add("--website", help="https://…")
    logo = profile.add_mutually_exclusive_group()
    logo.add_argument(
        "--logo",
        metavar="FILE",
        help=f"PNG or SVG, at most {MAX_LOGO_BYTES // 1024} KiB (- reads standard input)",
    )
    if update:
        logo.add_argument("--no-logo", action="store_true", help="remove the logo")
    add("--accent-colour", metavar="#RRGGBB")
    add("--footer", help="a line of text at the foot of every document")
    add("--payment-terms", dest="payment_terms_days", type=int, metavar="DAYS", help="1-365 (default 14)")
    add("--ehf-attach-pdf", action=argparse.BooleanOptionalAction, default=None, help="attach the PDF to EHF")
    add(
        "--f-tax-approved",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="SE: Godkänd för F-skatt",
    )
    vat = profile.add_mutually_exclusive_group()
    vat.add_argument("--not-vat-registered", dest="vat_registered", action="store_false", default=None)
    if update:
        vat.add_argument("--vat-registered", dest="vat_registered", action="store_true", default=None)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m services.ledger", description="Run or operate the ledger.")
    areas = root.add_subparsers(dest="area")
    tenants = areas.add_parser("tenants", help="creditors, their profiles and API keys").add_subparsers(
        dest="command"
    )
    create = tenants.add_parser("create", help="a new tenant with its first API key (and profile)")
    create.add_argument("--name", required=True)
    create.add_argument("--org-number", required=True)
    create.add_argument("--jurisdiction", choices=["NO", "SE"], default="NO")
    create.add_argument("--kid-scheme", choices=["mod10", "mod11"], default="mod10")
    create.add_argument("--kid-length", type=int, default=10)
    create.add_argument("--currency", default="NOK")
    create.add_argument("--key-name", default="erp")
    _add_profile_options(create, update=False)
    update = tenants.add_parser("update", help="change the tenant's creditor profile (a new version)")
    update.add_argument("tenant_id")
    _add_profile_options(update, update=True)
    show = tenants.add_parser("show", help="the tenant's creditor profile")
    show.add_argument("tenant_id")
    show.add_argument("--version", type=int, default=0, help="a version (default: the current one)")
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


def profile_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The profile fields the options given set (logo: the file's bytes)."""
    changes: dict[str, Any] = {
        name: getattr(args, name) for name in PROFILE_FIELDS if getattr(args, name, None) is not None
    }
    if "address_lines" in changes:
        changes["address_lines"] = tuple(changes["address_lines"])
    if getattr(args, "org_number", None) is not None and args.command == "update":
        changes["org_number"] = args.org_number
    if getattr(args, "no_logo", False):
        changes["logo"] = b""
    elif args.logo is not None:
        changes["logo"] = _read_logo(args.logo)
    return changes


def _read_logo(name: str) -> bytes:
    """The logo file's bytes; `-` reads standard input (`kubectl exec -i … --logo - < logo.svg`)."""
    if name == "-":
        data = sys.stdin.buffer.read(MAX_LOGO_BYTES + 1)
        if len(data) > MAX_LOGO_BYTES:
            raise InvalidArgument([FieldViolation("logo", f"larger than {MAX_LOGO_BYTES // 1024} KiB")])
        return data
    path = Path(name)
    try:
        if path.stat().st_size > MAX_LOGO_BYTES:
            raise InvalidArgument(
                [FieldViolation("logo", f"{name} is larger than {MAX_LOGO_BYTES // 1024} KiB")]
            )
        return path.read_bytes()
    except OSError as exc:
        raise InvalidArgument([FieldViolation("logo", f"cannot read {name}: {exc.strerror}")]) from None


def describe(tenant: Tenant, found: ProfileVersion) -> list[str]:
    """The profile as `tenants show` prints it: one `field  value` line each."""
    p = found.profile
    address = p.address
    rows = [
        ("tenant", f"{tenant.id}  {tenant.name}"),
        (
            "version",
            f"{p.version}" + (f" (made {found.made_at:%Y-%m-%d %H:%M} UTC)" if found.made_at else ""),
        ),
        ("legal_name", p.legal_name),
        ("org_number", p.org_number + (f" ({p.company_form})" if p.company_form else "")),
        ("jurisdiction", p.jurisdiction),
        ("vat_id", p.vat_id or "not VAT registered"),
        ("register", "Foretaksregisteret" if p.in_enterprise_register else ""),
        (
            "address",
            ", ".join([*address.lines, f"{address.postal_code} {address.city}".strip(), address.country]),
        ),
        ("bank_account", kontonr.format(p.bank_account) if p.bank_account else ""),
        ("iban", p.iban),
        ("bic", p.bic),
        ("bankgiro", p.bankgiro),
        ("plusgiro", p.plusgiro),
        ("email", p.email),
        ("phone", p.phone),
        ("website", p.website),
        ("logo", f"{p.logo_media_type}, {len(p.logo)} bytes, sha256 {p.logo_sha256}" if p.logo else ""),
        ("accent_colour", p.accent_colour),
        ("footer", p.footer),
        ("payment_terms", f"{p.payment_terms_days} days"),
        ("ehf_attach_pdf", "yes" if p.ehf_attach_pdf else "no"),
        ("f_tax_approved", "yes" if p.f_tax_approved else ("no" if p.jurisdiction == "SE" else "")),
    ]
    if not p.version:
        rows.insert(2, ("note", "no profile yet: documents show only the tenant's name (`tenants update`)"))
    return [f"{label:<15}{value}" for label, value in rows if value]


def error_lines(exc: InvalidArgument) -> list[str]:
    """One line per wrong field, named by the option that sets it."""
    lines = []
    for v in exc.violations:
        head = v.field.split("[")[0]
        option = _OPTIONS.get(head) or "--" + head.replace("_", "-")
        lines.append(f"error: {option} ({v.field}): {v.description}")
    return lines


async def _create(store: LedgerStore, args: argparse.Namespace, now: datetime) -> None:
    new = NewTenant(
        args.name, args.org_number, args.jurisdiction, args.kid_scheme, args.kid_length, args.currency
    )
    tenant, key, profile = await create_tenant(store, new, args.key_name, now, profile_changes(args))
    print(f"tenant {tenant.id} ({tenant.name}, {tenant.org_number})\napi key {args.key_name}: {key}")
    print("The key is shown only now: give it to the ERP as `authorization: Bearer <key>`.")
    if profile is None:
        print(
            "No creditor profile yet (documents need the address and a way to pay): "
            f"python -m services.ledger tenants update {tenant.id} --address-line … --postal-code … "
            "--city … --bank-account …"
        )
    else:
        print(f"profile version {profile.version}")


async def _update(store: LedgerStore, args: argparse.Namespace, now: datetime) -> None:
    changes = profile_changes(args)
    if not changes:
        raise InvalidArgument(
            [FieldViolation("profile", "nothing to change: give at least one profile option")]
        )
    profile, made = await change_profile(store, args.tenant_id, changes, now=now, actor=ACTOR)
    if made:
        print(f"tenant {args.tenant_id} profile version {profile.version}")
    else:
        print(f"tenant {args.tenant_id} profile unchanged (version {profile.version})")


async def _show(store: LedgerStore, tenant_id: str, version: int) -> None:
    doc = await store.tenants.find_one({"_id": tenant_id}, projection={"api_keys": 0})
    if doc is None:
        raise NotFound(f"no tenant {tenant_id}")
    tenant = tenant_from_doc(doc)
    print("\n".join(describe(tenant, await profile_at(store, tenant, version))))


async def run(args: argparse.Namespace, settings: LedgerSettings) -> int:
    client = create_mongo_client(settings.mongo_uri, app_name="fordring-ledger-admin")
    store = LedgerStore(client, settings.mongo_database)
    now = datetime.now(UTC)
    try:
        if args.area == "outbox":
            return await run_outbox_command(args, store.db)
        if args.command == "create":
            await _create(store, args, now)
        elif args.command == "update":
            await _update(store, args, now)
        elif args.command == "show":
            await _show(store, args.tenant_id, args.version)
        elif args.command == "add-key":
            print(f"api key {args.key_name}: {await add_key(store, args.tenant_id, args.key_name, now)}")
        elif args.command == "revoke-key":
            await revoke_key(store, args.tenant_id, args.key_name)
            print(f"revoked {args.key_name} of {args.tenant_id} (running replicas forget it within 30 s)")
        else:
            async for doc in store.tenants.find({}, sort=[("created_at", 1)]):
                keys = ", ".join(k["name"] for k in doc["api_keys"]) or "no keys"
                print(f"{doc['_id']}  {doc['name']}  {doc['settings'].get('org_number', '')}  keys: {keys}")
    except InvalidArgument as exc:
        print("\n".join(error_lines(exc)), file=sys.stderr)
        return 2
    except (NotFound, FailedPrecondition) as exc:
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
