"""The creditor's profile: who asks for the money and where to pay it, as every document shows it.

The ledger owns it (services/ledger/profiles.py keeps every version); other services read a version
through the tenant directory (services/common/directory.py). A version never changes once made: an
invoice names the version it was issued under, and its documents are rendered from that one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import urlsplit

import phonenumbers
from lxml import etree
from pydantic import BaseModel, ConfigDict, Field
from stdnum import bic, iban, luhn
from stdnum.no import kontonr
from stdnum.no import orgnr as no_orgnr
from stdnum.se import orgnr as se_orgnr

from services.common.errors import Violations
from services.common.text import check_text

# Company forms registered in Foretaksregisteret, which NO-R-002 wants stated on the invoice.
ENTERPRISE_REGISTER_FORMS = frozenset({"AS", "ASA", "NUF"})
MAX_LOGO_BYTES = 256 * 1024
LOGO_MEDIA_TYPES = frozenset({"image/png", "image/svg+xml"})


class PostalAddress(BaseModel):
    model_config = ConfigDict(frozen=True)

    lines: tuple[str, ...] = ()
    postal_code: str = ""
    city: str = ""
    country: str = ""


class CreditorProfile(BaseModel):
    """One version of a tenant's profile (validated by the ledger before it is stored)."""

    model_config = ConfigDict(frozen=True)

    legal_name: str
    org_number: str
    jurisdiction: Literal["NO", "SE"] = "NO"
    company_form: str = ""
    vat_registered: bool = True
    address: PostalAddress = PostalAddress()
    # Norwegian account number (11 digits), IBAN/BIC, Swedish bankgiro and plusgiro.
    bank_account: str = ""
    iban: str = ""
    bic: str = ""
    bankgiro: str = ""
    plusgiro: str = ""
    email: str = ""
    phone: str = ""
    website: str = ""
    logo: bytes = b""
    logo_media_type: str = ""
    accent_colour: str = "#1F4E79"
    footer: str = ""
    payment_terms_days: int = Field(default=14, ge=1, le=365)
    # EHF: attach the PDF to the UBL document.
    ehf_attach_pdf: bool = True
    # SE: "Godkänd för F-skatt" (SE-R rules want it stated).
    f_tax_approved: bool = False
    version: int = 0

    @property
    def vat_id(self) -> str:
        """The seller's VAT identifier as invoices state it (NO-R-001: "NO" + org number + "MVA")."""
        if not self.vat_registered:
            return ""
        if self.jurisdiction == "SE":
            return f"SE{self.org_number}01"
        return f"NO{self.org_number}MVA"

    @property
    def in_enterprise_register(self) -> bool:
        return self.jurisdiction == "NO" and self.company_form.upper() in ENTERPRISE_REGISTER_FORMS

    @property
    def logo_sha256(self) -> str:
        """The logo's SHA-256 (hex): what events carry instead of the logo itself."""
        return hashlib.sha256(self.logo).hexdigest() if self.logo else ""


# --- checking a profile ----------------------------------------------------------------------

# Company forms by jurisdiction: Brønnøysundregistrene's organisation forms (NO) and Bolagsverket's
# (SE) that invoice.
COMPANY_FORMS: Final = {
    "NO": frozenset(
        {"AS", "ASA", "NUF", "ENK", "DA", "ANS", "SA", "BA", "KS", "STI", "FLI", "SE", "IKS", "KF"}
    ),
    "SE": frozenset({"AB", "HB", "KB", "EF", "EK", "BRF", "IF", "STI", "FIL"}),
}
MAX_NAME: Final = 200
MAX_ADDRESS_LINES: Final = 5
MAX_FOOTER: Final = 500
MAX_WEBSITE: Final = 200
MAX_TERMS_DAYS: Final = 365
DEFAULT_ACCENT: Final = "#1F4E79"
_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_COLOUR: Final = re.compile(r"#[0-9A-Fa-f]{6}")
_POSTAL: Final = {"NO": re.compile(r"[0-9]{4}"), "SE": re.compile(r"[0-9]{3} ?[0-9]{2}")}
_PNG_MAGIC: Final = b"\x89PNG\r\n\x1a\n"
SVG_NAMESPACE: Final = "http://www.w3.org/2000/svg"
# Elements that run code or embed other documents: a logo is a picture, nothing more.
_SVG_ACTIVE: Final = frozenset(
    {"script", "foreignobject", "iframe", "object", "embed", "handler", "listener"}
)
_CSS_URL: Final = re.compile(r"url\(\s*['\"]?\s*([^)'\"\s]*)", re.IGNORECASE)


@dataclass(frozen=True)
class ProfileInput:
    """A profile as an operator gives it; `check_profile` checks and normalises it."""

    legal_name: str
    org_number: str
    jurisdiction: str = "NO"
    company_form: str = ""
    vat_registered: bool = True
    address_lines: tuple[str, ...] = ()
    postal_code: str = ""
    city: str = ""
    # ISO 3166-1 alpha-2; empty: the jurisdiction's country.
    country: str = ""
    bank_account: str = ""
    iban: str = ""
    bic: str = ""
    bankgiro: str = ""
    plusgiro: str = ""
    email: str = ""
    phone: str = ""
    website: str = ""
    logo: bytes = b""
    accent_colour: str = DEFAULT_ACCENT
    footer: str = ""
    payment_terms_days: int = 14
    ehf_attach_pdf: bool = True
    f_tax_approved: bool = False


def profile_input(profile: CreditorProfile) -> ProfileInput:
    """A stored profile as input again (to change some of its fields and check the result)."""
    address = profile.address
    return ProfileInput(
        **profile.model_dump(
            exclude={"address", "logo_media_type", "version"},
        ),
        address_lines=address.lines,
        postal_code=address.postal_code,
        city=address.city,
        country=address.country,
    )


def check_profile(given: ProfileInput) -> CreditorProfile:
    """Every wrong field at once (InvalidArgument, fields named as in CreditorProfile: `bank_account`,
    `address.postal_code`), or the profile normalised: compact identifiers, E.164 phone, upper-case
    colour, the logo's media type found from its bytes. Its version is 0 (the store numbers it)."""
    v = Violations()
    jurisdiction = given.jurisdiction.strip().upper()
    if jurisdiction not in COMPANY_FORMS:
        v.add("jurisdiction", f"must be NO or SE, got {given.jurisdiction!r}")
    legal_name = given.legal_name.strip()
    if not legal_name:
        v.add("legal_name", "required (the name in the register)")
    check_text(legal_name, "legal_name", MAX_NAME, v)
    org_number = _org_number(given.org_number, jurisdiction, v)
    company_form = given.company_form.strip().upper()
    known = COMPANY_FORMS.get(jurisdiction, frozenset())
    if company_form and company_form not in known:
        v.add(
            "company_form",
            f"{given.company_form!r} is not a company form in {jurisdiction or '?'} "
            f"(known: {', '.join(sorted(known))})",
        )
    if given.f_tax_approved and jurisdiction != "SE":
        v.add("f_tax_approved", "F-skatt is Swedish: only for SE creditors")
    address = _address(given, jurisdiction, v)
    bank_account = _bank_account(given.bank_account, v)
    iban_ = _iban(given.iban, bank_account, v)
    bic_ = _bic(given.bic, iban_, v)
    bankgiro = _giro(given.bankgiro, "bankgiro", v)
    plusgiro = _giro(given.plusgiro, "plusgiro", v)
    ways = {"NO": (bank_account, iban_), "SE": (bankgiro, plusgiro, iban_)}.get(jurisdiction, ("x",))
    if not any(ways):
        means = "bank_account or iban" if jurisdiction == "NO" else "bankgiro, plusgiro or iban"
        v.add("payment_means", f"creditors in {jurisdiction} need a way to be paid: give {means}")
    email = given.email.strip().lower()
    check_text(email, "email", 254, v)
    if email and not _EMAIL.match(email):
        v.add("email", f"{given.email!r} is not an e-mail address")
    phone = _phone(given.phone, jurisdiction, v)
    website = _website(given.website, v)
    logo_type = ""
    if given.logo:
        problem, logo_type = logo_problem(given.logo)
        if problem:
            v.add("logo", problem)
    colour = given.accent_colour.strip()
    if not _COLOUR.fullmatch(colour):
        v.add("accent_colour", f"{given.accent_colour!r} is not a colour as #RRGGBB (e.g. #1F4E79)")
    check_text(given.footer, "footer", MAX_FOOTER, v, multiline=True)
    if not 1 <= given.payment_terms_days <= MAX_TERMS_DAYS:
        v.add("payment_terms_days", f"must be 1..{MAX_TERMS_DAYS} days, got {given.payment_terms_days}")
    v.raise_if_any()
    return CreditorProfile(
        legal_name=legal_name,
        org_number=org_number,
        jurisdiction=jurisdiction,
        company_form=company_form,
        vat_registered=given.vat_registered,
        address=address,
        bank_account=bank_account,
        iban=iban_,
        bic=bic_,
        bankgiro=bankgiro,
        plusgiro=plusgiro,
        email=email,
        phone=phone,
        website=website,
        logo=given.logo,
        logo_media_type=logo_type,
        accent_colour=colour.upper(),
        footer=given.footer.strip(),
        payment_terms_days=given.payment_terms_days,
        ehf_attach_pdf=given.ehf_attach_pdf,
        f_tax_approved=given.f_tax_approved,
    )


def _org_number(value: str, jurisdiction: str, v: Violations) -> str:
    if not value.strip():
        v.add("org_number", "required")
        return ""
    check_text(value, "org_number", 32, v)
    validator = se_orgnr if jurisdiction == "SE" else no_orgnr
    if not validator.is_valid(value):
        v.add("org_number", f"{value!r} is not a valid {jurisdiction or 'NO'} organisation number")
        return ""
    return str(validator.compact(value))


def _address(given: ProfileInput, jurisdiction: str, v: Violations) -> PostalAddress:
    lines = tuple(line.strip() for line in given.address_lines if line.strip())
    if not lines:
        v.add("address.lines", "at least one address line is required (documents show the seller's address)")
    elif len(lines) > MAX_ADDRESS_LINES:
        v.add("address.lines", f"at most {MAX_ADDRESS_LINES} lines")
    for i, line in enumerate(lines[:MAX_ADDRESS_LINES]):
        check_text(line, f"address.lines[{i}]", MAX_NAME, v)
    city = given.city.strip()
    if not city:
        v.add("address.city", "required")
    check_text(city, "address.city", 100, v)
    country = (given.country.strip() or jurisdiction).upper()
    if not re.fullmatch(r"[A-Z]{2}", country):
        v.add("address.country", f"{given.country!r} is not an ISO 3166-1 alpha-2 code (e.g. NO)")
    postal_code = given.postal_code.strip()
    pattern = _POSTAL.get(country)
    if not postal_code:
        v.add("address.postal_code", "required")
    elif len(postal_code) > 16 or (pattern and not pattern.fullmatch(postal_code)):
        v.add("address.postal_code", f"{given.postal_code!r} is not a postal code in {country}")
    else:
        check_text(postal_code, "address.postal_code", 16, v)
    return PostalAddress(lines=lines, postal_code=postal_code, city=city, country=country)


def _bank_account(value: str, v: Violations) -> str:
    if not value.strip():
        return ""
    compact = str(kontonr.compact(value)) if len(value) <= 32 else value
    if not kontonr.is_valid(compact):
        v.add("bank_account", f"{value[:40]!r} is not a valid Norwegian account number (11 digits, MOD11)")
        return ""
    return compact


def _iban(value: str, bank_account: str, v: Violations) -> str:
    if not value.strip():
        return ""
    if len(value) > 64 or not iban.is_valid(value):
        v.add("iban", f"{value[:64]!r} is not a valid IBAN")
        return ""
    compact = str(iban.compact(value))
    # A Norwegian IBAN is NO + 2 check digits + the 11-digit account number.
    if bank_account and compact.startswith("NO") and compact[4:] != bank_account:
        v.add("iban", f"{compact} is not the IBAN of account number {bank_account}")
    return compact


def _bic(value: str, iban_: str, v: Violations) -> str:
    if not value.strip():
        return ""
    if len(value) > 16 or not bic.is_valid(value):
        v.add("bic", f"{value[:16]!r} is not a BIC (8 or 11 characters, e.g. DNBANOKKXXX)")
        return ""
    if not iban_:
        v.add("bic", "a BIC goes with an IBAN: give the IBAN too")
    return str(bic.compact(value))


def _giro(value: str, field: str, v: Violations) -> str:
    """A Swedish bankgiro (7-8 digits) or plusgiro (2-8 digits) number, Luhn-checked, as printed:
    bankgiro "5050-1055" / "505-1055", plusgiro "4784-1" (the check digit after a dash)."""
    if not value.strip():
        return ""
    digits = "".join(c for c in value if c not in " -")
    lengths = (7, 8) if field == "bankgiro" else tuple(range(2, 9))
    if not (digits.isascii() and digits.isdigit()) or len(digits) not in lengths:
        v.add(field, f"{value[:20]!r} is not a {field} number ({lengths[0]}-{lengths[-1]} digits)")
        return ""
    if not luhn.is_valid(digits):
        v.add(field, f"{value!r} has a wrong check digit (Luhn)")
        return ""
    if field == "bankgiro":
        return f"{digits[:-4]}-{digits[-4:]}"
    return f"{digits[:-1]}-{digits[-1]}"


def _phone(value: str, jurisdiction: str, v: Violations) -> str:
    phone = value.strip()
    if not phone:
        return ""
    check_text(phone, "phone", 32, v)
    try:
        parsed = phonenumbers.parse(phone, jurisdiction or "NO")
    except phonenumbers.NumberParseException:
        v.add("phone", f"{value[:32]!r} is not a phone number (e.g. +4722334455)")
        return ""
    if not phonenumbers.is_valid_number(parsed):
        v.add("phone", f"{value[:32]!r} is not a valid phone number")
        return ""
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def _website(value: str, v: Violations) -> str:
    website = value.strip()
    if not website:
        return ""
    check_text(website, "website", MAX_WEBSITE, v)
    try:
        parts = urlsplit(website)
        host = parts.hostname or ""
    except ValueError:
        parts, host = None, ""
    if parts is None or parts.scheme not in ("http", "https"):
        v.add("website", f"{value[:60]!r} is not a web address: it starts with https:// (or http://)")
    elif "." not in host or any(c.isspace() for c in website) or parts.username or parts.password:
        v.add("website", f"{value[:60]!r} is not a web address (e.g. https://fjordbris.no)")
    return website


def logo_problem(data: bytes) -> tuple[str, str]:
    """Why `data` is no logo ("" when it is one), and its media type: a PNG, or an SVG that is a
    picture only (no scripts, no event handlers, nothing fetched from elsewhere)."""
    if len(data) > MAX_LOGO_BYTES:
        return f"at most {MAX_LOGO_BYTES // 1024} KiB, got {len(data) // 1024} KiB", ""
    if data.startswith(_PNG_MAGIC):
        if data[12:16] != b"IHDR":
            return "a PNG signature, but not a PNG image (no IHDR chunk)", ""
        return "", "image/png"
    problem = _svg_problem(data)
    if problem is None:
        return "not a PNG or SVG image", ""
    return problem, "image/svg+xml" if not problem else ""


def _svg_problem(data: bytes) -> str | None:
    """None when `data` is not XML at all; "" for a harmless SVG; else what is wrong with it."""
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_blank_text=True
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return None
    # A DOCTYPE is where entities are declared (billion laughs, external entities).
    if getattr(root.getroottree().docinfo, "doctype", ""):
        return "an SVG logo must not have a DOCTYPE (entities are not allowed)"
    name = etree.QName(root)
    if name.localname != "svg":
        return f"XML, but not an SVG image (root element <{name.localname}>)"
    # Without its namespace, browsers and PDF renderers do not draw an SVG file as an image.
    if name.namespace != SVG_NAMESPACE:
        return f'an SVG logo needs its namespace: <svg xmlns="{SVG_NAMESPACE}">'
    # <?xml-stylesheet?> loads a style sheet from elsewhere.
    outside = [*root.itersiblings(preceding=True), *root.itersiblings()]
    if any(isinstance(node, etree._ProcessingInstruction) for node in [*outside, *root.iter()]):
        return "an SVG logo must not have processing instructions (<?xml-stylesheet?> and the like)"
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        local = etree.QName(element).localname
        if local.lower() in _SVG_ACTIVE:
            return f"an SVG logo must not contain <{local}> (scripts and embedded documents)"
        if local.lower() == "style" and _external_css(element.text or ""):
            return "an SVG logo must not load anything from elsewhere (<style> with @import or url())"
        for attribute, raw in element.attrib.items():
            key = etree.QName(attribute).localname.lower()
            value = raw.decode() if isinstance(raw, bytes) else str(raw)
            if key.startswith("on"):
                return f"an SVG logo must not have event handlers ({key} on <{local}>)"
            if key in ("href", "src") and not _inline_reference(value):
                return f"an SVG logo must not refer to anything outside itself ({key}={value[:60]!r})"
            # <set attributeName="href" to="javascript:…"> and the like turn a picture into a link.
            if "javascript:" in "".join(value.split()).lower() or (
                key == "attributename" and value.split(":")[-1].strip().lower() in ("href", "src")
            ):
                return f"an SVG logo must not change links or run code ({key} on <{local}>)"
            if _external_css(value):
                return f"an SVG logo must not load anything from elsewhere ({key} on <{local}>)"
    return ""


def _inline_reference(value: str) -> bool:
    """A reference inside the document (#id) or an embedded raster image (data:image/png...)."""
    text = value.strip()
    return text.startswith("#") or re.match(r"data:image/(png|jpeg|gif|webp)[;,]", text, re.I) is not None


def _external_css(text: str) -> bool:
    if "@import" in text.lower():
        return True
    return any(not _inline_reference(target) for target in _CSS_URL.findall(text))
