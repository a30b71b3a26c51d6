"""The import format (one invoice per JSON line, customer embedded) and its mapping to IssueInvoiceRequest.

Pure: checks shape and types, collects every problem of a line with its field path, and leaves the
business rules (organisation numbers, VAT rates, KID) to the ledger. A line with problems still
yields a draft request (its broken fields empty), which the importer has the ledger check
(`validate_only`), so a line's problems are all reported in one run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from fordring.common.v1 import common_pb2
from fordring.ledger.v1 import ledger_pb2

from services.cli.violations import FieldViolation

CUSTOMER_KINDS = {
    "consumer": ledger_pb2.CUSTOMER_KIND_CONSUMER,
    "business": ledger_pb2.CUSTOMER_KIND_BUSINESS,
}
# The customer's channel choices, best first ("channels": ["efaktura", "email"]).
CHANNELS = {
    "email": ledger_pb2.CHANNEL_EMAIL,
    "sms": ledger_pb2.CHANNEL_SMS,
    "ehf": ledger_pb2.CHANNEL_EHF,
    "efaktura": ledger_pb2.CHANNEL_EFAKTURA,
    "vipps": ledger_pb2.CHANNEL_VIPPS,
    "print": ledger_pb2.CHANNEL_PRINT,
    "avtalegiro": ledger_pb2.CHANNEL_AVTALEGIRO,
}
# What the customer agreed to: e-mail and SMS, an eFaktura agreement, an AvtaleGiro mandate.
CONSENTS = ("email", "sms", "efaktura", "avtalegiro")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CURRENCY = re.compile(r"[A-Z]{3}")


class InvoiceFormatError(ValueError):
    def __init__(
        self,
        violations: Iterable[FieldViolation],
        draft: ledger_pb2.IssueInvoiceRequest | None = None,
    ) -> None:
        self.violations = tuple(violations)
        # What could be read of the line (broken fields left empty), for the ledger to check the rest.
        self.draft = draft
        super().__init__("; ".join(str(v) for v in self.violations))


@dataclass(frozen=True)
class ParsedLine:
    """One line of an import file: a request ready to send, or what is wrong with it."""

    line_no: int
    external_id: str
    request: ledger_pb2.IssueInvoiceRequest | None
    violations: tuple[FieldViolation, ...] = ()
    # For a line with problems: what could be read of it, for the ledger to check the rest.
    draft: ledger_pb2.IssueInvoiceRequest | None = None


def parse_jsonl(lines: Iterable[str]) -> list[ParsedLine]:
    """Every non-blank line, numbered from 1 as an editor shows them."""
    return [parse_line(text, number) for number, text in enumerate(lines, start=1) if text.strip()]


def parse_line(text: str, line_no: int) -> ParsedLine:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        problem = FieldViolation("", f"not valid JSON: {exc.msg} (column {exc.colno})")
        return ParsedLine(line_no, "", None, (problem,))
    return parse_record(data, line_no)


def parse_record(data: object, line_no: int) -> ParsedLine:
    external_id = ""
    if isinstance(data, Mapping) and isinstance(data.get("external_id"), str):
        external_id = data["external_id"]
    try:
        request = to_request(data)
    except InvoiceFormatError as exc:
        return ParsedLine(line_no, external_id, None, exc.violations, exc.draft)
    return ParsedLine(line_no, external_id, request)


def to_request(data: object) -> ledger_pb2.IssueInvoiceRequest:
    """Map one invoice record to IssueInvoiceRequest, or raise InvoiceFormatError with every problem."""
    problems: list[FieldViolation] = []
    invoice = _Fields.of(data, "", problems, _INVOICE_FIELDS)
    if invoice is None:
        raise InvoiceFormatError(problems)
    external_id = invoice.text("external_id")
    customer = _customer(invoice.record("customer"))
    lines = [_invoice_line(item) for item in invoice.records("lines", non_empty=True)]
    request = ledger_pb2.IssueInvoiceRequest(
        idempotency_key=external_id,
        issue_date=invoice.date("issue_date"),
        # Neither a due date nor terms: the creditor's default terms.
        due_date=invoice.date("due_date", required=False),
        payment_terms_days=invoice.integer("payment_terms_days", required=False, unit="days"),
        currency=invoice.currency("currency"),
        language=invoice.text("language", required=False),
        buyer_reference=invoice.text("buyer_reference", required=False),
        order_reference=invoice.text("order_reference", required=False),
        contract_reference=invoice.text("contract_reference", required=False),
        invoice_number=invoice.text("invoice_number", required=False),
        kid=invoice.text("kid", required=False),
        lines=lines,
    )
    fee_agreed = invoice.boolean("reminder_fee_agreed")
    if fee_agreed is not None:
        request.reminder_fee_agreed = fee_agreed
    if customer is not None:
        request.customer.CopyFrom(customer)
    if problems:
        raise InvoiceFormatError(problems, request)
    return request


def _customer(fields: _Fields | None) -> ledger_pb2.CustomerInput | None:
    if fields is None:
        return None
    kind = CUSTOMER_KINDS.get(fields.choice("kind", CUSTOMER_KINDS), ledger_pb2.CUSTOMER_KIND_UNSPECIFIED)
    bank_account = fields.text("bank_account", required=False)
    return ledger_pb2.CustomerInput(
        number=fields.text("number"),
        name=fields.text("name"),
        kind=kind,
        org_number=fields.text("org_number", required=False),
        national_id=fields.text("national_id", required=False),
        email=fields.text("email", required=False),
        phone=fields.text("phone", required=False),
        address=_address(fields.record("address")),
        language=fields.text("language", required=False),
        bank_accounts=[bank_account] if bank_account else [],
        channel_preferences=[CHANNELS[name] for name in fields.choices("channels", CHANNELS)],
        consents=ledger_pb2.Consents(**fields.flags("consents", CONSENTS)),
    )


def _address(fields: _Fields | None) -> common_pb2.Address | None:
    if fields is None:
        return None
    return common_pb2.Address(
        lines=fields.texts("lines"),
        postal_code=fields.text("postal_code"),
        city=fields.text("city"),
        country=fields.text("country"),
    )


def _invoice_line(fields: _Fields) -> ledger_pb2.InvoiceLineInput:
    return ledger_pb2.InvoiceLineInput(
        description=fields.text("description"),
        quantity=fields.decimal("quantity"),
        unit_price_minor=fields.integer("unit_price_minor"),
        vat_rate=fields.decimal("vat_rate"),
        unit_code=fields.text("unit_code", required=False),
        vat_category=fields.text("vat_category", required=False),
        vat_exemption_reason=fields.text("vat_exemption_reason", required=False),
    )


_INVOICE_FIELDS = frozenset(
    {
        "external_id", "invoice_number", "kid", "customer", "issue_date", "due_date",
        "payment_terms_days", "currency", "language", "buyer_reference", "order_reference",
        "contract_reference", "lines", "reminder_fee_agreed",
    }
)  # fmt: skip
_CUSTOMER_FIELDS = frozenset(
    {
        "number", "name", "kind", "org_number", "national_id", "email", "phone", "address", "language",
        "bank_account", "channels", "consents",
    }
)  # fmt: skip
_ADDRESS_FIELDS = frozenset({"lines", "postal_code", "city", "country"})
_LINE_FIELDS = frozenset(
    {
        "description",
        "quantity",
        "unit_price_minor",
        "vat_rate",
        "unit_code",
        "vat_category",
        "vat_exemption_reason",
    }
)
_NESTED_FIELDS = {"customer": _CUSTOMER_FIELDS, "address": _ADDRESS_FIELDS, "lines": _LINE_FIELDS}


class _Fields:
    """Reads the fields of one JSON object, recording each problem under its path ("lines[1].quantity")."""

    def __init__(self, data: Mapping[str, object], path: str, problems: list[FieldViolation]) -> None:
        self._data = data
        self._path = path
        self._problems = problems

    @classmethod
    def of(
        cls, data: object, path: str, problems: list[FieldViolation], known: frozenset[str]
    ) -> _Fields | None:
        if not isinstance(data, Mapping) or not all(isinstance(key, str) for key in data):
            problems.append(FieldViolation(path, "must be a JSON object"))
            return None
        problems.extend(
            FieldViolation(cls._join(path, key), "unknown field") for key in sorted(set(data) - known)
        )
        return cls(data, path, problems)

    @staticmethod
    def _join(path: str, name: str) -> str:
        return f"{path}.{name}" if path else name

    def _field(self, name: str) -> str:
        return self._join(self._path, name)

    def _problem(self, name: str, description: str) -> None:
        self._problems.append(FieldViolation(self._field(name), description))

    def _get(self, name: str, *, required: bool) -> object:
        value = self._data.get(name)
        if value is None and required:
            self._problem(name, "is required")
        return value

    def text(self, name: str, *, required: bool = True) -> str:
        value = self._get(name, required=required)
        if value is None:
            return ""
        if not isinstance(value, str):
            self._problem(name, "must be a string")
            return ""
        if required and not value.strip():
            self._problem(name, "must not be empty")
        return value

    def texts(self, name: str) -> list[str]:
        value = self._get(name, required=True)
        if value is None:
            return []
        if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
            self._problem(name, "must be a non-empty list of strings")
            return []
        return value

    def date(self, name: str, *, required: bool = True) -> str:
        value = self.text(name, required=required)
        if value and not _is_iso_date(value):
            self._problem(name, f"must be a date as YYYY-MM-DD, got {value!r}")
        return value

    def currency(self, name: str) -> str:
        value = self.text(name)
        if value and not _CURRENCY.fullmatch(value):
            self._problem(name, f"must be an ISO 4217 code such as NOK, got {value!r}")
        return value

    def decimal(self, name: str) -> str:
        """A decimal as a string ("1.5"); JSON numbers are accepted and written as their shortest form."""
        value = self._get(name, required=True)
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self._problem(name, 'must be a decimal number as a string, e.g. "1.5"')
            return ""
        text = value.strip() if isinstance(value, str) else repr(value)
        try:
            finite = Decimal(text).is_finite()
        except InvalidOperation:
            finite = False
        if not finite:
            self._problem(name, f"must be a decimal number, got {value!r}")
            return ""
        return text

    def integer(self, name: str, *, required: bool = True, unit: str = "minor units (øre)") -> int:
        value = self._get(name, required=required)
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int):
            self._problem(name, f"must be a whole number of {unit}, got {value!r}")
            return 0
        return value

    def boolean(self, name: str) -> bool | None:
        """An optional true/false (absent or null: None)."""
        value = self._get(name, required=False)
        if value is None:
            return None
        if not isinstance(value, bool):
            self._problem(name, f"must be true or false, got {value!r}")
            return None
        return value

    def choice(self, name: str, options: Iterable[str]) -> str:
        value = self.text(name)
        if value and value not in options:
            self._problem(name, f"must be one of {', '.join(options)}, got {value!r}")
            return ""
        return value

    def choices(self, name: str, options: Iterable[str]) -> list[str]:
        """An optional list of distinct names from `options`, in the order given."""
        value = self._get(name, required=False)
        if value is None:
            return []
        allowed = list(options)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self._problem(name, f"must be a list of channel names ({', '.join(allowed)})")
            return []
        unknown = [item for item in value if item not in allowed]
        if unknown:
            self._problem(name, f"unknown {', '.join(map(repr, unknown))}; choose from {', '.join(allowed)}")
            return []
        if len(set(value)) != len(value):
            self._problem(name, "names a channel twice")
            return []
        return list(value)

    def flags(self, name: str, options: Iterable[str]) -> dict[str, bool]:
        """An optional object of true/false flags, each named in `options` (absent: false)."""
        value = self._get(name, required=False)
        if value is None:
            return {}
        allowed = list(options)
        if not isinstance(value, Mapping):
            self._problem(name, f"must be an object of true/false flags ({', '.join(allowed)})")
            return {}
        flags: dict[str, bool] = {}
        for key, flag in value.items():
            if key not in allowed:
                self._problems.append(
                    FieldViolation(self._join(self._field(name), str(key)), "unknown field")
                )
            elif not isinstance(flag, bool):
                self._problems.append(
                    FieldViolation(self._join(self._field(name), key), "must be true or false")
                )
            else:
                flags[key] = flag
        return flags

    def record(self, name: str) -> _Fields | None:
        value = self._get(name, required=True)
        if value is None:
            return None
        return _Fields.of(value, self._field(name), self._problems, _NESTED_FIELDS[name])

    def records(self, name: str, *, non_empty: bool) -> list[_Fields]:
        value = self._get(name, required=True)
        if value is None:
            return []
        if not isinstance(value, list) or (non_empty and not value):
            self._problem(name, "must be a non-empty list")
            return []
        found = (
            _Fields.of(item, f"{self._field(name)}[{index}]", self._problems, _NESTED_FIELDS[name])
            for index, item in enumerate(value)
        )
        return [fields for fields in found if fields is not None]


def _is_iso_date(value: str) -> bool:
    if not _ISO_DATE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True
