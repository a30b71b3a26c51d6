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
