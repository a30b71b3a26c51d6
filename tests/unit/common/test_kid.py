"""Payment references: KID MOD10/MOD11, Bankgirot OCR and RF creditor references."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from stdnum import iso11649, luhn

from services.common.kid import (
    InvalidKid,
    KidScheme,
    generate_kid,
    mod10_check_digit,
    mod11_check_digit,
    ocr_reference,
    rf_reference,
    validate_kid,
    validate_ocr,
    validate_rf,
)

digit_strings = st.text(alphabet="0123456789", min_size=1, max_size=30)
kid_bodies = st.text(alphabet="0123456789", min_size=3, max_size=24)
sequence_bodies = st.text(alphabet="0123456789", min_size=2, max_size=23)
schemes = st.sampled_from(KidScheme)


def mod11_oracle(digits: str) -> str:
    """DOMAIN.md's MOD11, spelled out independently: weights 2..7 repeating from the right."""
    weights = [2 + i % 6 for i in range(len(digits))]
    total = sum(w * int(d) for w, d in zip(weights, reversed(digits), strict=True))
    check = 11 - total % 11
    return {11: "0", 10: "-"}.get(check, str(check))


# --- check digits -------------------------------------------------------------------------------


def test_domain_vectors() -> None:
    assert mod10_check_digit("12345678") == "2"
    assert mod11_check_digit("12345678") == "5"


@pytest.mark.parametrize(
    ("body", "check"),
    [("1009", "-"), ("1012", "-"), ("1003", "0"), ("0000", "0"), ("7992739871", "6")],
)
def test_mod11_special_remainders(body: str, check: str) -> None:
    assert mod11_check_digit(body) == check


@pytest.mark.parametrize(("body", "check"), [("7992739871", "3"), ("0", "0"), ("1", "8"), ("9", "1")])
def test_mod10_vectors(body: str, check: str) -> None:
    assert mod10_check_digit(body) == check


@given(digit_strings)
def test_mod10_is_luhn(body: str) -> None:
    assert mod10_check_digit(body) == luhn.calc_check_digit(body)


@given(digit_strings)
def test_mod11_matches_the_rule(body: str) -> None:
    assert mod11_check_digit(body) == mod11_oracle(body)


@pytest.mark.parametrize("body", ["", "12a4", "12 34", "-123", "\uff11\uff12\uff13", "1.5"])
def test_check_digit_needs_digits(body: str) -> None:
    with pytest.raises(ValueError, match="digits"):
        mod10_check_digit(body)
    with pytest.raises(ValueError, match="digits"):
        mod11_check_digit(body)


# --- validate_kid -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kid", "scheme", "expected"),
    [
        ("123456782", None, KidScheme.MOD10),
        ("123456782", KidScheme.MOD10, KidScheme.MOD10),
        ("123456785", None, KidScheme.MOD11),
        ("123456785", KidScheme.MOD11, KidScheme.MOD11),
        ("1009-", None, KidScheme.MOD11),
        ("1009-", KidScheme.MOD11, KidScheme.MOD11),
        ("10030", KidScheme.MOD11, KidScheme.MOD11),
        ("0000", None, KidScheme.MOD10),  # valid under both: MOD10 is tried first
        ("0000", KidScheme.MOD11, KidScheme.MOD11),
        ("1236", None, KidScheme.MOD11),
        ("0000000000000000000000000", None, KidScheme.MOD10),  # 25 digits
    ],
)
def test_valid_kids(kid: str, scheme: KidScheme | None, expected: KidScheme) -> None:
    assert validate_kid(kid, scheme) is expected


def test_scheme_may_be_given_as_its_value() -> None:
    assert validate_kid("123456785", KidScheme("mod11")) is KidScheme.MOD11
    assert str(KidScheme.MOD10) == "mod10"


@pytest.mark.parametrize(
    ("kid", "scheme", "reason"),
    [
        ("123", None, "must be 4-25 digits, got 3"),
        ("", None, "must be 4-25 digits, got 0"),
        ("0" * 26, None, "must be 4-25 digits, got 26"),
        ("12a45", None, "contains non-digits"),
        ("1234 5678", None, "contains non-digits"),
        (" 123456782", None, "contains non-digits"),
        ("\uff11\uff12\uff13\uff14\uff15", None, "contains non-digits"),
        ("12-45", None, "contains non-digits"),
        ("-1234", None, "contains non-digits"),
        ("1009-", KidScheme.MOD10, "ends in '-', which only MOD11 allows"),
        ("123456783", KidScheme.MOD10, "check digit is 3, expected 2 (MOD10)"),
        ("123456782", KidScheme.MOD11, "check digit is 2, expected 5 (MOD11)"),
        ("123456789", None, "check digit is 9, expected 2 (MOD10) or 5 (MOD11)"),
        ("10090", KidScheme.MOD11, "check digit is 0, expected - (MOD11)"),
        ("1234-", None, "check digit is -, expected 3 (MOD11)"),
    ],
)
def test_invalid_kids_say_why(kid: str, scheme: KidScheme | None, reason: str) -> None:
    with pytest.raises(InvalidKid) as caught:
        validate_kid(kid, scheme)
    assert caught.value.reason == reason
    assert reason in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_invalid_kid_can_be_raised_with_a_reason_only() -> None:
    error = InvalidKid("unknown KID")
    assert error.reason == "unknown KID"
    assert str(error) == "invalid KID: unknown KID"


@given(kid_bodies, schemes)
def test_appending_the_check_digit_makes_a_valid_kid(body: str, scheme: KidScheme) -> None:
    check = mod10_check_digit(body) if scheme is KidScheme.MOD10 else mod11_check_digit(body)
    assert validate_kid(body + check, scheme) is scheme
    assert validate_kid(body + check) in set(KidScheme)


@given(st.text(alphabet="0123456789", min_size=2, max_size=22))
def test_dash_kids_are_accepted_as_mod11(prefix: str) -> None:
    # The last body digit has weight 2, so at most one of its ten values leaves remainder 10.
    dash_bodies = [prefix + digit for digit in "0123456789" if mod11_check_digit(prefix + digit) == "-"]
    assume(dash_bodies)
    kid = dash_bodies[0] + "-"
    assert validate_kid(kid, KidScheme.MOD11) is KidScheme.MOD11
    assert validate_kid(kid) is KidScheme.MOD11
    with pytest.raises(InvalidKid, match="only MOD11"):
        validate_kid(kid, KidScheme.MOD10)


@given(sequence_bodies, schemes, st.integers(min_value=0), st.integers(min_value=1, max_value=9))
def test_a_single_wrong_digit_is_caught(body: str, scheme: KidScheme, position: int, delta: int) -> None:
    kid = generate_kid(int(body), length=len(body) + 2, scheme=scheme)
    position %= len(kid)
    wrong = kid[:position] + str((int(kid[position]) + delta) % 10) + kid[position + 1 :]
    with pytest.raises(InvalidKid):
        validate_kid(wrong, scheme)


# --- generate_kid -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sequence", "length", "scheme", "expected"),
    [
        (1234567, 9, KidScheme.MOD10, "123456709"),
        (42, 10, KidScheme.MOD10, "0000004200"),
        (1, 4, KidScheme.MOD10, "0109"),
        (0, 4, KidScheme.MOD10, "0000"),
        (99, 4, KidScheme.MOD11, "9903"),
        (1, 4, KidScheme.MOD11, "0108"),
        (4, 6, KidScheme.MOD11, "000418"),  # variant 0 would give "-" (00040 -> remainder 10)
        (10**23 - 1, 25, KidScheme.MOD10, "9" * 23 + "0" + mod10_check_digit("9" * 23 + "0")),
    ],
)
def test_generate_kid_vectors(sequence: int, length: int, scheme: KidScheme, expected: str) -> None:
    assert generate_kid(sequence, length=length, scheme=scheme) == expected


def test_mod11_variant_skips_a_dash_check_digit() -> None:
    assert mod11_check_digit("00040") == "-"
    assert generate_kid(4, length=6, scheme=KidScheme.MOD11) == "000418"


@pytest.mark.parametrize("length", [3, 26, 0, -1])
def test_generate_kid_length_bounds(length: int) -> None:
    with pytest.raises(ValueError, match="KID length must be 4-25"):
        generate_kid(1, length=length, scheme=KidScheme.MOD10)


def test_generate_kid_sequence_too_large_names_both() -> None:
    with pytest.raises(ValueError, match=r"sequence 100 does not fit a KID of length 4 \(largest is 99\)"):
        generate_kid(100, length=4, scheme=KidScheme.MOD11)


def test_generate_kid_rejects_negative_sequences() -> None:
    with pytest.raises(ValueError, match="negative"):
        generate_kid(-1, length=10, scheme=KidScheme.MOD10)


@given(st.data(), st.integers(min_value=4, max_value=25), schemes)
def test_generated_kids_validate_and_never_end_in_dash(
    data: st.DataObject, length: int, scheme: KidScheme
) -> None:
    sequence = data.draw(st.integers(min_value=0, max_value=10 ** (length - 2) - 1))
    kid = generate_kid(sequence, length=length, scheme=scheme)
    assert len(kid) == length
    assert kid.isdigit()
    assert "-" not in kid
    assert validate_kid(kid, scheme) is scheme
    assert int(kid[:-2]) == sequence
    assert kid[-2] in ("0", "1") if scheme is KidScheme.MOD11 else kid[-2] == "0"
    assert generate_kid(sequence, length=length, scheme=scheme) == kid


@given(st.integers(min_value=4, max_value=25), schemes, st.data())
def test_distinct_sequences_give_distinct_kids(length: int, scheme: KidScheme, data: st.DataObject) -> None:
    top = 10 ** (length - 2) - 1
    sequences = data.draw(st.sets(st.integers(min_value=0, max_value=top), min_size=2, max_size=50))
    kids = {generate_kid(sequence, length=length, scheme=scheme) for sequence in sequences}
    assert len(kids) == len(sequences)


def test_every_four_digit_mod11_kid_is_distinct_and_valid() -> None:
    kids = [generate_kid(sequence, length=4, scheme=KidScheme.MOD11) for sequence in range(100)]
    assert len(set(kids)) == 100
    assert all(validate_kid(kid, KidScheme.MOD11) is KidScheme.MOD11 for kid in kids)


# --- Swedish OCR (Bankgirot) --------------------------------------------------------------------


def test_ocr_domain_vector() -> None:
    assert ocr_reference("12345") == "1234574"
    assert ocr_reference("12345", with_length_digit=False) == "123455"


@pytest.mark.parametrize(
    ("ref", "length_digit", "valid"),
    [
        ("1234574", None, True),
        ("1234574", True, True),
        ("1234574", False, True),  # the 7 is then ordinary data
        ("123455", None, True),
        ("123455", False, True),
        ("123455", True, False),  # second-to-last digit 5 is not the length 6
        ("1234575", None, False),
        ("1234584", True, False),
        ("18", None, True),
        ("18", True, False),  # too short to hold a length digit
        ("8", None, False),
        ("", None, False),
        ("12345 74", None, False),
        ("123457a", None, False),
        ("\uff11\uff12\uff13\uff14\uff15\uff17\uff14", None, False),
    ],
)
def test_validate_ocr(ref: str, length_digit: bool | None, valid: bool) -> None:
    assert validate_ocr(ref, length_digit=length_digit) is valid


def test_ocr_length_digit_wraps_at_ten() -> None:
    ref = ocr_reference("12345678")  # 10 digits in all: length digit 0
    assert ref[-2] == "0"
    assert len(ref) == 10
    assert validate_ocr(ref, length_digit=True)


@pytest.mark.parametrize("base", ["", "12a", "1 2", "-1"])
def test_ocr_reference_needs_digits(base: str) -> None:
    with pytest.raises(ValueError, match="OCR base"):
        ocr_reference(base)


def test_ocr_reference_max_length() -> None:
    assert len(ocr_reference("1" * 23)) == 25
    assert len(ocr_reference("1" * 24, with_length_digit=False)) == 25
    with pytest.raises(ValueError, match="at most 25"):
        ocr_reference("1" * 24)
    with pytest.raises(ValueError, match="at most 25"):
        ocr_reference("1" * 25, with_length_digit=False)
    assert not validate_ocr("0" * 26)


@given(st.text(alphabet="0123456789", min_size=1, max_size=23), st.booleans())
def test_generated_ocr_references_validate(base: str, with_length_digit: bool) -> None:
    ref = ocr_reference(base, with_length_digit=with_length_digit)
    assert ref.startswith(base)
    assert luhn.is_valid(ref)
    assert validate_ocr(ref)
    assert validate_ocr(ref, length_digit=with_length_digit)
    if with_length_digit:
        assert validate_ocr(ref, length_digit=False)


@given(st.text(alphabet="0123456789", min_size=1, max_size=23), st.integers(min_value=0), st.integers(1, 9))
def test_ocr_catches_a_single_wrong_digit(base: str, position: int, delta: int) -> None:
    ref = ocr_reference(base)
    position %= len(ref)
    wrong = ref[:position] + str((int(ref[position]) + delta) % 10) + ref[position + 1 :]
    assert not validate_ocr(wrong)


# --- RF creditor reference (ISO 11649) ----------------------------------------------------------


def test_rf_vector() -> None:
    assert rf_reference("539007547034") == "RF18539007547034"
    assert rf_reference("5390 0754 70y") == "RF185390075470Y"


@pytest.mark.parametrize(
    ("ref", "valid"),
    [
        ("RF18539007547034", True),
        ("RF18 5390 0754 7034", True),
        ("rf18539007547034", True),
        ("RF17539007547034", False),
        ("RF18", False),
        ("XX18539007547034", False),
        ("", False),
    ],
)
def test_validate_rf(ref: str, valid: bool) -> None:
    assert validate_rf(ref) is valid


@pytest.mark.parametrize("base", ["", "1" * 22, "ÆØÅ", "12_34"])
def test_rf_reference_rejects_bad_bases(base: str) -> None:
    with pytest.raises(ValueError, match="RF reference base"):
        rf_reference(base)


@given(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=21))
def test_rf_references_validate(base: str) -> None:
    ref = rf_reference(base)
    assert ref.startswith("RF")
    assert ref.endswith(base)
    assert validate_rf(ref)
    assert iso11649.is_valid(ref)
