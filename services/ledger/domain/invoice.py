"""Issuing invoices and credit notes: check every field, compute lines and totals (EN 16931)."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Final

from services.common.clock import parse_iso_date
from services.common.errors import Violations
from services.common.kid import InvalidKid, KidScheme, validate_kid
from services.common.money import (
    Totals,
    UnknownCurrency,
    VatLine,
    check_currency,
    invoice_totals,
    line_net_minor,
    parse_decimal,
)
from services.common.text import check_text
from services.ledger.domain.customer import LANGUAGES, CustomerData, validate_customer
from services.ledger.domain.rates import vat_rates

MAX_LINES = 1000
MAX_TERMS_DAYS = 365
# Bounds that keep every total inside int64 minor units (1000 lines x 10^15 < 9.2 x 10^18) and
# refuse what is certainly a mistake, each reported on its field.
MAX_AMOUNT_MINOR = 10**15
MAX_QUANTITY = Decimal(10**9)
EARLIEST, LATEST = date(2000, 1, 1), date(2099, 12, 31)
MAX_TEXT = 1000
MAX_REFERENCE = 200
MAX_KEY = 128
# VAT categories (UNCL5305 as EN 16931 uses them): S standard rated, Z zero rated, E exempt,
# AE reverse charge, K intra-community supply, G export outside the EEA, O outside the scope of VAT.
VAT_CATEGORIES: Final = ("S", "Z", "E", "AE", "K", "G", "O")
# Categories that charge no VAT for a reason the document must state (EN 16931 BR-E-10, BR-AE-10, …).
EXEMPT_CATEGORIES: Final = frozenset({"E", "AE", "K", "G", "O"})
MAX_EXEMPTION_REASON = 200
# Line fields added after requests were first stored: left out of the request hash while empty, so a
# retry of a request stored before they existed still matches its invoice.
_LATER_LINE_FIELDS: Final = ("vat_category", "vat_exemption_reason")
# The same for the request's own later fields, left out while unset (None).
_LATER_FIELDS: Final = ("reminder_fee_agreed",)


def default_vat_category(rate: Decimal) -> str:
    """The category of a line that names none: standard rated above 0 %, else zero rated."""
    return "S" if rate > 0 else "Z"


def request_hash(cmd: Any) -> str:
    """A hash of a command (a dataclass with `lines`): the same idempotency key with another payload
    is refused."""
    payload = asdict(cmd)
    for name in _LATER_FIELDS:
        if payload.get(name, 0) is None:
            del payload[name]
    for line in payload["lines"]:
        for name in _LATER_LINE_FIELDS:
            if not line[name]:
                del line[name]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def check_length(value: str, field: str, limit: int, violations: Violations) -> None:
    if len(value) > limit:
        violations.add(field, f"at most {limit} characters, got {len(value)}")


@dataclass(frozen=True)
class LineInput:
    description: str
    quantity: str
    unit_price_minor: int
    vat_rate: str
    unit_code: str = ""
    # Empty: S when the rate is above 0, else Z.
    vat_category: str = ""
    # Required for E, AE, K, G and O: why no VAT is charged.
    vat_exemption_reason: str = ""


@dataclass(frozen=True)
class Line:
    number: int
    description: str
    quantity: Decimal
    unit_price_minor: int
    vat_rate: Decimal
    unit_code: str
    net_amount_minor: int
    # Empty: the rate's default (default_vat_category).
    vat_category: str = ""
    vat_exemption_reason: str = ""

    def __post_init__(self) -> None:
        if not self.vat_category:
            object.__setattr__(self, "vat_category", default_vat_category(self.vat_rate))


@dataclass(frozen=True)
class IssueInvoice:
    """What the ERP asks for (after decoding from gRPC)."""

    idempotency_key: str
    customer_number: str
    customer: CustomerData | None
    issue_date: str
    due_date: str
    payment_terms_days: int
    currency: str
    lines: tuple[LineInput, ...]
    buyer_reference: str = ""
    order_reference: str = ""
    contract_reference: str = ""
    language: str = ""
    invoice_number: str = ""
    kid: str = ""
    # Swedish debt: a påminnelseavgift agreed when the debt arose (None: the dunning policy decides).
    reminder_fee_agreed: bool | None = None

    def fingerprint(self) -> str:
        """A hash of the request: the same idempotency key with another payload is refused."""
        return request_hash(self)


@dataclass(frozen=True)
class InvoiceDraft:
    """A checked invoice, ready to be numbered and stored."""

    issue_date: date
    due_date: date
    currency: str
    lines: tuple[Line, ...]
    totals: Totals
    customer: CustomerData | None
    language: str
    kid: str


def parse_date(text: str, field: str, violations: Violations) -> date | None:
    if not text:
        violations.add(field, "required (ISO date, e.g. 2026-11-23)")
        return None
    try:
        parsed = parse_iso_date(text)
    except ValueError:
        violations.add(field, f"{text[:40]!r} is not an ISO date (YYYY-MM-DD)")
        return None
    if not EARLIEST <= parsed <= LATEST:
        violations.add(field, f"{parsed} is outside {EARLIEST.year}-{LATEST.year}")
        return None
    return parsed


def check_lines(
    lines: tuple[LineInput, ...], *, jurisdiction: str, on: date | None, violations: Violations
) -> tuple[Line, ...]:
    if not lines:
        violations.add("lines", "at least one line is required")
    if len(lines) > MAX_LINES:
        violations.add("lines", f"at most {MAX_LINES} lines")
    allowed = vat_rates(jurisdiction, on) if on else frozenset()
    checked: list[Line] = []
    for i, line in enumerate(lines):
        p = f"lines[{i}]."
        if not line.description.strip():
            violations.add(p + "description", "required")
        check_text(line.description, p + "description", MAX_TEXT, violations, multiline=True)
        if line.unit_code and not (line.unit_code.isalnum() and len(line.unit_code) <= 3):
            violations.add(
                p + "unit_code", f"{line.unit_code!r} is not a UN/ECE rec. 20 unit code (e.g. EA, HUR)"
            )
        quantity = _decimal(line.quantity, p + "quantity", violations)
        if quantity is not None and quantity <= 0:
            violations.add(p + "quantity", f"must be positive, got {line.quantity}")
        elif quantity is not None and quantity > MAX_QUANTITY:
            violations.add(p + "quantity", f"at most {MAX_QUANTITY}")
            quantity = None
        if line.unit_price_minor < 0:
            # EN 16931 BR-27: the item net price shall not be negative.
            violations.add(p + "unit_price_minor", "must not be negative")
        elif line.unit_price_minor > MAX_AMOUNT_MINOR:
            violations.add(p + "unit_price_minor", f"at most {MAX_AMOUNT_MINOR}")
        elif quantity is not None and line_net_minor(quantity, line.unit_price_minor) > MAX_AMOUNT_MINOR:
            violations.add(p.rstrip("."), f"quantity x unit price is more than {MAX_AMOUNT_MINOR}")
            quantity = None
        rate = _decimal(line.vat_rate, p + "vat_rate", violations)
        # No rate table for the date (before the first valid-from) allows no rate, rather than any rate.
        rate_known = rate is not None and (on is None or rate in allowed)
        if rate is not None and on is not None and rate not in allowed:
            violations.add(
                p + "vat_rate",
                f"{line.vat_rate}% is not a VAT rate in {jurisdiction} on {on} "
                f"(allowed: {', '.join(str(r) for r in sorted(allowed, reverse=True)) or 'none known'})",
            )
        # A refused rate is reported once, on vat_rate, not again against the category.
        category = _check_vat_category(line, rate if rate_known else None, p, violations)
        if quantity is not None and rate is not None and quantity > 0:
            checked.append(
                Line(
                    number=i + 1,
                    description=line.description.strip(),
                    quantity=quantity,
                    unit_price_minor=line.unit_price_minor,
                    vat_rate=rate,
                    unit_code=line.unit_code or "EA",
                    net_amount_minor=line_net_minor(quantity, line.unit_price_minor),
                    vat_category=category,
                    vat_exemption_reason=line.vat_exemption_reason.strip(),
                )
            )
    categories = {line.vat_category for line in checked}
    if "O" in categories and len(categories) > 1:
        # EN 16931 BR-O-11..14: a document outside the scope of VAT holds nothing else (outlays next to
        # taxable work go on an invoice of their own).
        violations.add(
            "lines",
            "lines outside the scope of VAT (category O) cannot share a document with lines in "
            f"{', '.join(sorted(categories - {'O'}))} (EN 16931 BR-O-11): "
            "issue them on an invoice of their own",
        )
    return tuple(checked)


def _check_vat_category(line: LineInput, rate: Decimal | None, p: str, violations: Violations) -> str:
    """The line's VAT category (EN 16931 BR-S/Z/E/AE/IC/G/O rules): S charges VAT, every other
    category charges none, and those without VAT for a reason state it."""
    given = line.vat_category.strip().upper()
    reason = line.vat_exemption_reason.strip()
    check_text(line.vat_exemption_reason, p + "vat_exemption_reason", MAX_EXEMPTION_REASON, violations)
    if given and given not in VAT_CATEGORIES:
        violations.add(
            p + "vat_category",
            f"{line.vat_category[:20]!r} is not a VAT category (one of {', '.join(VAT_CATEGORIES)})",
        )
        return ""
    if rate is None:
        return given
    category = given or default_vat_category(rate)
    if category == "S" and rate <= 0:
        violations.add(p + "vat_category", "S (standard rated) needs a VAT rate above 0; 0 % is Z, E, …")
    elif category != "S" and rate != 0:
        violations.add(p + "vat_category", f"a line in category {category} carries 0 % VAT, not {rate} %")
    if category in EXEMPT_CATEGORIES and not reason:
        violations.add(
            p + "vat_exemption_reason",
            f"required for VAT category {category}: why no VAT is charged (it is printed on the invoice)",
        )
    elif category not in EXEMPT_CATEGORIES and reason:
        violations.add(
            p + "vat_exemption_reason",
            f"only for lines in category E, AE, K, G or O, not {category} (EN 16931 BR-{category}-10)",
        )
    return category


def _decimal(text: str, field: str, violations: Violations) -> Decimal | None:
    try:
        return parse_decimal(text, field=field)
    except ValueError as exc:
        violations.add(field, str(exc))
        return None


def check_issue_invoice(cmd: IssueInvoice, *, jurisdiction: str, kid_scheme: str) -> InvoiceDraft:
    """Every wrong field at once (InvalidArgument), or a draft."""
    v = Violations()
    if not cmd.idempotency_key.strip():
        v.add("idempotency_key", "required (the ERP's own invoice id)")
    check_text(cmd.idempotency_key, "idempotency_key", MAX_KEY, v)
    customer = None
    if cmd.customer is not None:
        customer = validate_customer(cmd.customer, v)
    elif not cmd.customer_number.strip():
        v.add("customer", "give a customer number or an embedded customer")
    issue = parse_date(cmd.issue_date, "issue_date", v)
    due: date | None = None
    if cmd.due_date and cmd.payment_terms_days:
        v.add("payment_terms_days", "give either due_date or payment_terms_days, not both")
    elif cmd.due_date:
        due = parse_date(cmd.due_date, "due_date", v)
        if due and issue and due < issue:
            v.add("due_date", f"{due} is before the issue date {issue}")
    elif cmd.payment_terms_days:
        if not 0 < cmd.payment_terms_days <= MAX_TERMS_DAYS:
            v.add("payment_terms_days", f"must be 1..{MAX_TERMS_DAYS}")
        elif issue:
            due = issue + timedelta(days=cmd.payment_terms_days)
    else:
        v.add("due_date", "give a due date or payment terms")
    try:
        currency = check_currency(cmd.currency)
    except UnknownCurrency as exc:
        v.add("currency", str(exc))
        currency = ""
    lines = check_lines(cmd.lines, jurisdiction=jurisdiction, on=issue, violations=v)
    if cmd.language and cmd.language not in LANGUAGES:
        v.add("language", f"must be one of {', '.join(sorted(LANGUAGES))}")
    for name in ("buyer_reference", "order_reference", "contract_reference"):
        check_text(getattr(cmd, name), name, MAX_REFERENCE, v)
    check_text(cmd.kid, "kid", 25, v)
    check_text(cmd.customer_number, "customer_number", 64, v)
    if cmd.kid:
        try:
            validate_kid(cmd.kid, KidScheme(kid_scheme))
        except InvalidKid as exc:
            v.add("kid", exc.reason)
        else:
            if cmd.kid.endswith("-"):
                v.add("kid", "a KID ending in '-' is refused by banks; use another")
    if cmd.invoice_number and (len(cmd.invoice_number) > 32 or not cmd.invoice_number.isprintable()):
        v.add("invoice_number", "at most 32 printable characters")
    v.raise_if_any()
    # Both are set once the checks above passed.
    assert issue is not None
    assert due is not None
    totals = invoice_totals([(ln.net_amount_minor, ln.vat_rate) for ln in lines])
    if totals.gross_minor <= 0:
        v.add("lines", "the invoice total must be positive")
        v.raise_if_any()
    return InvoiceDraft(
        issue_date=issue,
        due_date=due,
        currency=currency,
        lines=lines,
        totals=totals,
        customer=customer,
        language=cmd.language or (customer.language if customer else ""),
        kid=cmd.kid,
    )


@dataclass(frozen=True)
class IssueCreditNote:
    idempotency_key: str
    invoice_id: str
    invoice_number: str
    issue_date: str
    lines: tuple[LineInput, ...]
    reason: str
    credit_note_number: str = ""

    def fingerprint(self) -> str:
        return request_hash(self)


@dataclass(frozen=True)
class CreditDraft:
    issue_date: date
    lines: tuple[Line, ...]
    totals: Totals


def left_by_rate(
    invoiced: Iterable[tuple[Decimal, int]], credited: Iterable[tuple[Decimal, int]]
) -> dict[Decimal, int]:
    """What is still open to credit per VAT rate, taxable amounts or VAT amounts alike: invoiced
    minus credited, per rate."""
    left: dict[Decimal, int] = defaultdict(int)
    for rate, amount in invoiced:
        left[rate] += amount
    for rate, amount in credited:
        left[rate] -= amount
    return dict(left)


def check_credit_by_rate(
    lines: tuple[Line, ...], left: Mapping[Decimal, int], violations: Violations
) -> None:
    """A credit note reverses only VAT the invoice charged, and per rate no more than is left.

    Otherwise revenue and output VAT would be reversed at a rate never invoiced (EN 16931 BG-23
    per category) and the VAT return would be wrong.
    """
    per_rate: dict[Decimal, int] = defaultdict(int)
    for line in lines:
        if line.vat_rate not in left:
            rates = ", ".join(f"{r} %" for r in sorted(left, reverse=True))
            violations.add(
                f"lines[{line.number - 1}].vat_rate",
                f"the invoice has no {line.vat_rate} % VAT (it has {rates})",
            )
        else:
            per_rate[line.vat_rate] += line.net_amount_minor
    for rate, amount in sorted(per_rate.items(), reverse=True):
        if amount > left[rate]:
            violations.add(
                "lines",
                f"credits {amount} at {rate} % VAT, but only {left[rate]} is left to credit at that rate",
            )


def check_credit_categories(
    lines: tuple[Line, ...], invoice_lines: tuple[Line, ...], violations: Violations
) -> None:
    """A credit note line reverses a VAT category the invoice used at that rate (the VAT return
    reports zero-rated, exempt and reverse-charge sales apart)."""
    used: dict[Decimal, set[str]] = defaultdict(set)
    for line in invoice_lines:
        used[line.vat_rate].add(line.vat_category)
    for line in lines:
        categories = used.get(line.vat_rate)
        if categories and line.vat_category not in categories:
            violations.add(
                f"lines[{line.number - 1}].vat_category",
                f"the invoice has no {line.vat_rate} % lines in VAT category {line.vat_category} "
                f"(it has {', '.join(sorted(categories))})",
            )


def categories_by_rate(invoice_lines: tuple[Line, ...]) -> dict[Decimal, tuple[str, str]]:
    """Per VAT rate, the category and exemption reason of the invoice's largest line at that rate
    (what a line crediting "the rest at that rate" carries)."""
    largest: dict[Decimal, Line] = {}
    for line in invoice_lines:
        best = largest.get(line.vat_rate)
        if best is None or line.net_amount_minor > best.net_amount_minor:
            largest[line.vat_rate] = line
    return {rate: (ln.vat_category, ln.vat_exemption_reason) for rate, ln in largest.items()}


def credit_totals(
    lines: tuple[Line, ...], taxable_left: Mapping[Decimal, int], vat_left: Mapping[Decimal, int]
) -> Totals:
    """A credit note's totals, so that an invoice's credit notes together reverse exactly its VAT.

    Per rate the VAT is rounded as on any document (EN 16931 BR-CO-17), except that the credit note
    that credits all the taxable amount left at a rate takes exactly the VAT left there, and none
    takes more VAT than is left (the invoice rounded its VAT once, its credit notes once each).
    """
    totals = invoice_totals([(ln.net_amount_minor, ln.vat_rate) for ln in lines])
    breakdown = tuple(
        replace(v, vat_minor=_vat_to_credit(v, taxable_left.get(v.rate), vat_left.get(v.rate, 0)))
        for v in totals.vat_breakdown
    )
    vat = sum(v.vat_minor for v in breakdown)
    return Totals(
        net_minor=totals.net_minor, vat_minor=vat, gross_minor=totals.net_minor + vat, vat_breakdown=breakdown
    )


def _vat_to_credit(credit: VatLine, taxable_left: int | None, vat_left: int) -> int:
    if taxable_left is None or credit.taxable_minor > taxable_left:
        return credit.vat_minor  # refused by check_credit_by_rate
    if credit.taxable_minor == taxable_left:
        return max(0, vat_left)
    return max(0, min(credit.vat_minor, vat_left))


def remaining_lines(
    invoice_number: str,
    taxable_left: Mapping[Decimal, int],
    vat_left: Mapping[Decimal, int],
    categories: Mapping[Decimal, tuple[str, str]] | None = None,
) -> tuple[Line, ...]:
    """One line per VAT rate with anything left to credit, for its taxable amount left (the VAT
    left there follows from credit_totals), in the category the invoice used at that rate."""
    categories = categories or {}
    rates = sorted(
        (r for r, taxable in taxable_left.items() if taxable > 0 or vat_left.get(r, 0) > 0), reverse=True
    )
    return tuple(
        Line(
            number=number,
            description=f"Remaining amount of invoice {invoice_number} at {rate} % VAT",
            quantity=Decimal(1),
            unit_price_minor=max(0, taxable_left[rate]),
            vat_rate=rate,
            unit_code="EA",
            net_amount_minor=max(0, taxable_left[rate]),
            vat_category=categories.get(rate, ("", ""))[0],
            vat_exemption_reason=categories.get(rate, ("", ""))[1],
        )
        for number, rate in enumerate(rates, start=1)
    )


def check_credit_note(
    cmd: IssueCreditNote,
    *,
    invoice_number: str,
    invoice_lines: tuple[Line, ...],
    invoice_issue_date: date,
    already_credited: int,
    left_to_credit: int,
    left_per_rate: Mapping[Decimal, int],
    vat_left_per_rate: Mapping[Decimal, int],
    jurisdiction: str,
    today: date,
) -> CreditDraft:
    """A credit note credits lines of one invoice, or without lines all that is left of it: never
    more than is left to credit, in total and per VAT rate (left_per_rate holds taxable amounts,
    vat_left_per_rate the VAT amounts left)."""
    v = Violations()
    if not cmd.idempotency_key.strip():
        v.add("idempotency_key", "required (the ERP's own credit note id)")
    check_text(cmd.idempotency_key, "idempotency_key", MAX_KEY, v)
    if cmd.credit_note_number and (
        len(cmd.credit_note_number) > 32 or not cmd.credit_note_number.isprintable()
    ):
        v.add("credit_note_number", "at most 32 printable characters")
    issue = parse_date(cmd.issue_date, "issue_date", v) if cmd.issue_date else today
    if issue and issue < invoice_issue_date:
        v.add("issue_date", f"{issue} is before the invoice's issue date {invoice_issue_date}")
    if not cmd.reason.strip():
        v.add("reason", "required (it is printed on the credit note)")
    check_text(cmd.reason, "reason", MAX_TEXT, v, multiline=True)
    if cmd.lines:
        lines = check_lines(cmd.lines, jurisdiction=jurisdiction, on=issue, violations=v)
        check_credit_by_rate(lines, left_per_rate, v)
        check_credit_categories(lines, invoice_lines, v)
    elif already_credited:
        lines = remaining_lines(
            invoice_number, left_per_rate, vat_left_per_rate, categories_by_rate(invoice_lines)
        )
        if not lines:
            v.add("lines", "nothing is left to credit")
    else:
        lines = invoice_lines
    totals = credit_totals(lines, left_per_rate, vat_left_per_rate)
    if lines and totals.gross_minor <= 0:
        v.add("lines", "the credit note total must be positive")
    if totals.gross_minor > left_to_credit:
        v.add(
            "lines",
            f"the credit note ({totals.gross_minor}) exceeds what is left to credit ({left_to_credit})",
        )
    v.raise_if_any()
    assert issue is not None
    return CreditDraft(issue_date=issue, lines=lines, totals=totals)


def line_doc(line: Line) -> dict[str, Any]:
    return {
        "number": line.number,
        "description": line.description,
        "quantity": str(line.quantity),
        "unit_price_minor": line.unit_price_minor,
        "vat_rate": str(line.vat_rate),
        "unit_code": line.unit_code,
        "net_amount_minor": line.net_amount_minor,
        "vat_category": line.vat_category,
        "vat_exemption_reason": line.vat_exemption_reason,
    }


def line_from_doc(doc: dict[str, Any]) -> Line:
    return Line(
        number=doc["number"],
        description=doc["description"],
        quantity=Decimal(doc["quantity"]),
        unit_price_minor=doc["unit_price_minor"],
        vat_rate=Decimal(doc["vat_rate"]),
        unit_code=doc["unit_code"],
        net_amount_minor=doc["net_amount_minor"],
        # Lines stored before categories existed take their rate's default.
        vat_category=doc.get("vat_category", ""),
        vat_exemption_reason=doc.get("vat_exemption_reason", ""),
    )
