"""Errors every service raises; the gRPC layer maps each to a canonical status code."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One wrong field, named by its path in the request (`lines[2].quantity`)."""

    field: str
    description: str


class FordringError(Exception):
    """Base of the errors a caller can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(FordringError):
    """Bad input: every wrong field is named. Nothing was stored."""

    def __init__(self, violations: Iterable[FieldViolation], message: str = "") -> None:
        self.violations = tuple(violations)
        if not self.violations:
            raise ValueError("InvalidArgument needs at least one violation")
        text = message or "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(text)


class NotFound(FordringError):
    pass


class AlreadyExists(FordringError):
    pass


class FailedPrecondition(FordringError):
    """The request is well-formed but the state does not allow it (e.g. paying a credited invoice)."""

    def __init__(self, message: str, *, reason: str = "FAILED_PRECONDITION") -> None:
        super().__init__(message)
        self.reason = reason


class Unauthenticated(FordringError):
    pass


class Unavailable(FordringError):
    """Something this call needs (another service, the database) does not answer now: retry."""


class OutOfRange(FordringError):
    """The answer would not fit the contract (e.g. a total beyond int64 minor units)."""


class ResourceExhausted(FordringError):
    """The caller holds as much of a bounded resource (open streams) as it may; freeing some makes room."""


class Violations:
    """Collects field violations so a request reports every wrong field at once."""

    def __init__(self) -> None:
        self._items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self._items.append(FieldViolation(field, description))

    def __bool__(self) -> bool:
        return bool(self._items)

    def __iter__(self) -> Iterator[FieldViolation]:
        return iter(self._items)

    def raise_if_any(self) -> None:
        if self._items:
            raise InvalidArgument(self._items)


def safe_error_text(exc: BaseException) -> str:
    """An exception described without the data it may carry, for logs, spans and callers.

    A driver's error can quote whole documents (a duplicate-key BulkWriteError carries the invoice
    with the customer's name and e-mail); a validation error quotes its input. Those keep their type
    and codes only; our own errors are written not to carry personal data and keep their text.
    """
    from pydantic import ValidationError
    from pymongo.errors import BulkWriteError, OperationFailure, PyMongoError

    kind = type(exc).__name__
    if isinstance(exc, BulkWriteError):
        codes = sorted({int(e.get("code", 0)) for e in exc.details.get("writeErrors", [])})
        return f"{kind} (write error codes {codes}, {len(exc.details.get('writeErrors', []))} errors)"
    if isinstance(exc, OperationFailure):
        name = (exc.details or {}).get("codeName", "")
        return f"{kind} (code {exc.code}{' ' + name if name else ''})"
    if isinstance(exc, PyMongoError):
        return kind
    if isinstance(exc, ValidationError):
        fields = ", ".join(".".join(str(p) for p in e["loc"]) + f" ({e['type']})" for e in exc.errors()[:5])
        return f"{kind} ({exc.error_count()} errors: {fields})"
    if isinstance(exc, FordringError):
        return f"{kind}: {exc.message}"
    text = str(exc)
    # Unknown exceptions keep a short text; long ones are the ones that quote data.
    return f"{kind}: {text[:200]}" if text and len(text) <= 200 else kind
