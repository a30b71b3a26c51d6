"""Payment references: Norwegian KID (MOD10/MOD11), Swedish OCR (Bankgirot) and RF (ISO 11649)."""

from __future__ import annotations

import re
from enum import StrEnum

from stdnum import iso11649
from stdnum.iso7064 import mod_97_10

KID_MIN_LENGTH = 4
KID_MAX_LENGTH = 25  # Nets OCR giro handbook §2.2: 4-25 digits including the check digit
OCR_MIN_LENGTH = 2
OCR_MAX_LENGTH = 25  # Bankgirot OCR: at most 25 digits including the control digits

_DIGITS = re.compile(r"[0-9]+")
_RF_BASE = re.compile(r"[0-9A-Z]{1,21}")
_KID_CHECK_CHARS = frozenset("0123456789-")


class KidScheme(StrEnum):
    """The check-digit scheme of a KID agreement."""

    MOD10 = "mod10"
    MOD11 = "mod11"


class InvalidKid(ValueError):
    """A KID that fails the format or check-digit rules; `reason` says which, for people."""

    def __init__(self, reason: str, *, kid: str = "") -> None:
        super().__init__(f"invalid KID {kid!r}: {reason}" if kid else f"invalid KID: {reason}")
        self.reason = reason
        self.kid = kid


def _require_digits(digits: str, what: str) -> None:
    if not isinstance(digits, str) or _DIGITS.fullmatch(digits) is None:
        raise ValueError(f"{what} must be one or more digits 0-9, got {digits!r}")


def _luhn_digit(digits: str) -> str:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:  # weights 2,1,2,1... from the right
            value *= 2
            value = value - 9 if value > 9 else value
        total += value
    return str((10 - total % 10) % 10)


def mod10_check_digit(digits: str) -> str:
    """The Luhn (MOD10) check digit for digits: "12345678" -> "2"."""
    _require_digits(digits, "KID body")
    return _luhn_digit(digits)


def mod11_check_digit(digits: str) -> str:
    """The KID MOD11 check digit for digits, "0" for 11 and "-" for 10: "12345678" -> "5"."""
    _require_digits(digits, "KID body")
    weights = (2, 3, 4, 5, 6, 7)
    total = sum(int(char) * weights[i % 6] for i, char in enumerate(reversed(digits)))
    check = 11 - total % 11
    if check == 11:
        return "0"
    if check == 10:
        return "-"
    return str(check)


_CHECK_DIGIT = {KidScheme.MOD10: mod10_check_digit, KidScheme.MOD11: mod11_check_digit}


def validate_kid(kid: str, scheme: KidScheme | None = None) -> KidScheme:
    """The scheme kid is valid under (MOD10 tried first when scheme is None); else InvalidKid.

    A MOD11 KID may end in "-" (remainder 10): such KIDs are never generated but are accepted.
    """
    if not isinstance(kid, str):
        raise InvalidKid(f"must be a string of digits, got {type(kid).__name__}")
    if not KID_MIN_LENGTH <= len(kid) <= KID_MAX_LENGTH:
        raise InvalidKid(f"must be {KID_MIN_LENGTH}-{KID_MAX_LENGTH} digits, got {len(kid)}", kid=kid)
    body, check = kid[:-1], kid[-1]
    if _DIGITS.fullmatch(body) is None or check not in _KID_CHECK_CHARS:
        raise InvalidKid("contains non-digits", kid=kid)
    schemes = (KidScheme(scheme),) if scheme is not None else (KidScheme.MOD10, KidScheme.MOD11)
    if check == "-":
        if KidScheme.MOD11 not in schemes:
            raise InvalidKid("ends in '-', which only MOD11 allows", kid=kid)
        schemes = (KidScheme.MOD11,)
    expected = {candidate: _CHECK_DIGIT[candidate](body) for candidate in schemes}
    for candidate, digit in expected.items():
        if digit == check:
            return candidate
    wanted = " or ".join(f"{digit} ({candidate.name})" for candidate, digit in expected.items())
    raise InvalidKid(f"check digit is {check}, expected {wanted}", kid=kid)


def generate_kid(sequence: int, *, length: int, scheme: KidScheme) -> str:
    """The KID for sequence: sequence zero-padded to length-2 digits, a variant digit, the check digit.

    The variant is 0, except under MOD11 where it is the smallest digit whose check digit is not "-"
    (banks reject "-" KIDs); it is always 0 or 1. Distinct sequences give distinct KIDs.
    """
    if not KID_MIN_LENGTH <= length <= KID_MAX_LENGTH:
        raise ValueError(f"KID length must be {KID_MIN_LENGTH}-{KID_MAX_LENGTH}, got {length}")
    if sequence < 0:
        raise ValueError(f"KID sequence must not be negative, got {sequence}")
    width = length - 2
    if sequence >= 10**width:
        raise ValueError(
            f"sequence {sequence} does not fit a KID of length {length} (largest is {10**width - 1})"
        )
    prefix = f"{sequence:0{width}d}"
    check_digit = _CHECK_DIGIT[scheme]
    for variant in "0123456789":
        check = check_digit(prefix + variant)
        if check != "-":
            return prefix + variant + check
    raise AssertionError("unreachable: the variant digit has weight 2, so at most one variant gives '-'")


def ocr_reference(base: str, *, with_length_digit: bool = True) -> str:
    """A Bankgirot OCR reference: base, the optional length digit, the Luhn digit ("12345" -> "1234574")."""
    _require_digits(base, "OCR base")
    body = base
    if with_length_digit:
        body += str((len(base) + 2) % 10)  # total length including both control digits, mod 10
    reference = body + _luhn_digit(body)
    if len(reference) > OCR_MAX_LENGTH:
        raise ValueError(f"OCR reference would be {len(reference)} digits, at most {OCR_MAX_LENGTH} allowed")
    return reference


def validate_ocr(ref: str, *, length_digit: bool | None = None) -> bool:
    """Whether ref is a valid OCR reference: Luhn last digit, and with length_digit=True a length digit.

    None accepts either form. It checks the same as False: a reference with a length digit is also a
    valid reference without one, whose second-to-last digit is ordinary data.
    """
    if not isinstance(ref, str) or _DIGITS.fullmatch(ref) is None:
        return False
    min_length = OCR_MIN_LENGTH + 1 if length_digit else OCR_MIN_LENGTH
    if not min_length <= len(ref) <= OCR_MAX_LENGTH:
        return False
    if _luhn_digit(ref[:-1]) != ref[-1]:
        return False
    return not length_digit or ref[-2] == str(len(ref) % 10)


def rf_reference(base: str) -> str:
    """The RF creditor reference (ISO 11649) for base: "RF", two check digits, base (1-21 of 0-9, A-Z)."""
    compact = iso11649.compact(base)
    if _RF_BASE.fullmatch(compact) is None:
        raise ValueError(f"RF reference base must be 1-21 letters A-Z or digits, got {base!r}")
    return iso11649.validate("RF" + mod_97_10.calc_check_digits(compact + "RF") + compact)


def validate_rf(ref: str) -> bool:
    """Whether ref is a valid RF creditor reference; spaces and lower case are accepted, as printed."""
    return iso11649.is_valid(ref)
