"""Customer data as the ERP sends it, checked field by field."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

import phonenumbers
from stdnum import iban
from stdnum.no import fodselsnummer, kontonr
from stdnum.no import orgnr as no_orgnr
from stdnum.se import orgnr as se_orgnr
from stdnum.se import personnummer

from services.common.errors import Violations
from services.common.text import check_text

CustomerKind = Literal["consumer", "business"]
LANGUAGES: Final = frozenset({"nb", "nn", "sv", "en", "da"})
CHANNELS: Final = frozenset({"email", "sms", "ehf", "efaktura", "vipps", "print", "avtalegiro"})
_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_POSTAL: Final = {
    "NO": re.compile(r"^\d{4}$"),
    "SE": re.compile(r"^\d{3} ?\d{2}$"),
    "DK": re.compile(r"^\d{4}$"),
}
MAX_NAME: Final = 200
MAX_ADDRESS_LINES: Final = 5
MAX_BANK_ACCOUNTS: Final = 10
# Payer accounts learned from payments (the newest kept): a customer pays from a few accounts.
MAX_LEARNED_ACCOUNTS: Final = 20
_DEFAULT_LANGUAGE: Final = {"NO": "nb", "SE": "sv", "DK": "da"}


@dataclass(frozen=True)
class Address:
    lines: tuple[str, ...]
    postal_code: str
    city: str
    country: str


@dataclass(frozen=True)
class CustomerData:
    number: str
    name: str
    kind: CustomerKind
    org_number: str = ""
    national_id: str = ""
    email: str = ""
    phone: str = ""
    address: Address | None = None
    language: str = ""
    bank_accounts: tuple[str, ...] = ()
    channel_preferences: tuple[str, ...] = ()
    email_consent: bool = False
    sms_consent: bool = False
    # Agreements: eFaktura with the creditor, an AvtaleGiro mandate.
    efaktura_consent: bool = False
    avtalegiro_consent: bool = False


def validate_customer(data: CustomerData, violations: Violations, prefix: str = "customer") -> CustomerData:
    """Check every field; return the customer normalised (compact ids, E.164 phone, language)."""
    p = f"{prefix}."
    if not data.number.strip():
        violations.add(p + "number", "required")
    check_text(data.number, p + "number", 64, violations)
    if not data.name.strip():
        violations.add(p + "name", "required")
    check_text(data.name, p + "name", MAX_NAME, violations)
    # Surrounding white space is dropped from these (below), not refused.
    for name, limit in (("org_number", 32), ("national_id", 32), ("email", 254), ("phone", 32)):
        check_text(getattr(data, name).strip(), p + name, limit, violations)
    if len(data.bank_accounts) > MAX_BANK_ACCOUNTS:
        violations.add(p + "bank_accounts", f"at most {MAX_BANK_ACCOUNTS} accounts")
    if len(data.channel_preferences) > len(CHANNELS):
        violations.add(p + "channel_preferences", f"at most {len(CHANNELS)} channels")
    if data.kind not in ("consumer", "business"):
        violations.add(p + "kind", "must be consumer or business")
    country = data.address.country.upper() if data.address else ""
    if data.address is None:
        violations.add(p + "address", "required")
    else:
        _check_address(data.address, violations, p + "address.")
    org = _check_org_number(data, country, violations, p + "org_number")
    national_id = _check_national_id(data, country, violations, p + "national_id")
    email = data.email.strip().lower()
    if email and not _EMAIL.match(email):
        violations.add(p + "email", f"{data.email!r} is not an e-mail address")
    phone = _check_phone(data.phone, country, violations, p + "phone")
    language = data.language or _DEFAULT_LANGUAGE.get(country, "en")
    if language not in LANGUAGES:
        violations.add(p + "language", f"must be one of {', '.join(sorted(LANGUAGES))}")
    accounts = []
    for i, account in enumerate(data.bank_accounts[:MAX_BANK_ACCOUNTS]):
        compact = bank_account(account.replace(" ", "").replace(".", ""))
        if len(account) > 64:
            violations.add(f"{p}bank_accounts[{i}]", "at most 64 characters")
        elif compact is not None:
            accounts.append(compact)
        else:
            violations.add(
                f"{p}bank_accounts[{i}]", f"{account!r} is neither a Norwegian account number nor an IBAN"
            )
    for i, channel in enumerate(data.channel_preferences):
        if channel not in CHANNELS:
            violations.add(f"{p}channel_preferences[{i}]", f"unknown channel {channel!r}")
    return CustomerData(
        number=data.number.strip(),
        name=data.name.strip(),
        kind=data.kind,
        org_number=org,
        national_id=national_id,
        email=email,
        phone=phone,
        address=data.address,
        language=language,
        bank_accounts=tuple(accounts),
        channel_preferences=data.channel_preferences,
        email_consent=data.email_consent,
        sms_consent=data.sms_consent,
        efaktura_consent=data.efaktura_consent,
        avtalegiro_consent=data.avtalegiro_consent,
    )


def bank_account(compact: str) -> str | None:
    """A Norwegian account number (its 11 digits) or an IBAN (upper case, no spaces, as banks report
    payer accounts); None when it is neither."""
    if kontonr.is_valid(compact):
        return compact
    if iban.is_valid(compact):
        return str(iban.compact(compact))
    return None


_ACCOUNT_NOISE: Final = re.compile(r"[\s.\-]")
_OTHER_ACCOUNT: Final = re.compile(r"\d{5,34}")


def learned_account(account: str) -> str | None:
    """A payer account the matcher learned, as the ERP's accounts are kept (`bank_account`), or else
    the digits of another bank's account number (a Swedish bankgiro or clearing and account number:
    no check digit scheme is shared by them all); None when it is no account number."""
    if len(account) > 64:
        return None
    compact = _ACCOUNT_NOISE.sub("", account)
    known = bank_account(compact)
    if known is not None:
        return known
    return compact if _OTHER_ACCOUNT.fullmatch(compact) else None


def _check_address(address: Address, violations: Violations, p: str) -> None:
    if not any(line.strip() for line in address.lines):
        violations.add(p + "lines", "at least one address line is required")
    elif len(address.lines) > MAX_ADDRESS_LINES:
        violations.add(p + "lines", f"at most {MAX_ADDRESS_LINES} lines")
    for i, line in enumerate(address.lines[:MAX_ADDRESS_LINES]):
        check_text(line, f"{p}lines[{i}]", MAX_NAME, violations)
    if not address.city.strip():
        violations.add(p + "city", "required")
    check_text(address.city, p + "city", MAX_NAME, violations)
    check_text(address.postal_code, p + "postal_code", 16, violations)
    country = address.country.upper()
    if not re.fullmatch(r"[A-Z]{2}", country):
        violations.add(p + "country", "ISO 3166-1 alpha-2 code expected, e.g. NO")
    pattern = _POSTAL.get(country)
    if not address.postal_code.strip():
        violations.add(p + "postal_code", "required")
    elif pattern and not pattern.match(address.postal_code.strip()):
        violations.add(p + "postal_code", f"{address.postal_code!r} is not a postal code in {country}")


def _check_org_number(data: CustomerData, country: str, violations: Violations, field_name: str) -> str:
    if not data.org_number:
        if data.kind == "business" and country in ("NO", "SE"):
            violations.add(field_name, f"required for a business in {country}")
        return ""
    validator = se_orgnr if country == "SE" else no_orgnr
    if country not in ("NO", "SE", ""):
        return data.org_number.strip()
    if not validator.is_valid(data.org_number):
        violations.add(
            field_name, f"{data.org_number!r} is not a valid {country or 'NO'} organisation number"
        )
        return ""
    return str(validator.compact(data.org_number))


def _check_national_id(data: CustomerData, country: str, violations: Violations, field_name: str) -> str:
    if not data.national_id:
        return ""
    if data.kind != "consumer":
        violations.add(field_name, "only consumers have a national identity number")
        return ""
    validator = personnummer if country == "SE" else fodselsnummer
    if not validator.is_valid(data.national_id):
        # Never echo a national identity number back: it is personal data.
        violations.add(field_name, "not a valid national identity number")
        return ""
    return str(validator.compact(data.national_id))


def _check_phone(phone: str, country: str, violations: Violations, field_name: str) -> str:
    if not phone:
        return ""
    try:
        parsed = phonenumbers.parse(phone, country or None)
    except phonenumbers.NumberParseException:
        violations.add(field_name, f"{phone!r} is not a phone number (E.164 expected, e.g. +4791234567)")
        return ""
    if not phonenumbers.is_valid_number(parsed):
        violations.add(field_name, f"{phone!r} is not a valid phone number")
        return ""
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def mask_national_id(national_id: str) -> str:
    """Keep the birth date part (first 6 digits), hide the rest."""
    return national_id[:6] + "*" * (len(national_id) - 6) if len(national_id) > 6 else ""
