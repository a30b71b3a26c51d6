"""Customer data from the ERP: checked field by field, normalised, personal data never echoed."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum import luhn
from stdnum.no import fodselsnummer
from stdnum.no import orgnr as no_orgnr
from stdnum.se import orgnr as se_orgnr
from stdnum.se import personnummer

from services.common.errors import InvalidArgument, Violations
from services.ledger.domain.customer import (
    CHANNELS,
    LANGUAGES,
    Address,
    CustomerData,
    mask_national_id,
    validate_customer,
)


def no_org_number(body: str) -> str:
    """A valid Norwegian organisation number (MOD11) starting with the 8 digits of body."""
    for digit in "0123456789":
        if no_orgnr.is_valid(body + digit):
            return body + digit
    raise ValueError(f"no MOD11 check digit for {body} (remainder 10): pick another body")


def se_org_number(body: str) -> str:
    """A valid Swedish organisation number (Luhn) from 9 digits."""
    return body + luhn.calc_check_digit(body)


def no_national_id(body: str) -> str:
    """A valid fødselsnummer from birth date DDMMYY plus a 3-digit individual number."""
    first = fodselsnummer.calc_check_digit1(body)
    second = fodselsnummer.calc_check_digit2(body + first)
    number = body + first + second
    if not fodselsnummer.is_valid(number):
        raise ValueError(f"{body} gives no valid fødselsnummer: pick another individual number")
    return number


def se_national_id(body: str) -> str:
    """A valid personnummer from birth date YYMMDD plus a 3-digit birth number (Luhn)."""
    return body + luhn.calc_check_digit(body)


NO_ORG = no_org_number("98807791")
SE_ORG = se_org_number("556036079")
NO_ID = no_national_id("150190123")
SE_ID = se_national_id("880320001")
OSLO = Address(lines=("Storgata 1",), postal_code="0155", city="Oslo", country="NO")
STOCKHOLM = Address(lines=("Drottninggatan 1",), postal_code="111 51", city="Stockholm", country="SE")


def test_the_builders_give_valid_numbers() -> None:
    assert NO_ORG == "988077917"  # the example in stdnum's documentation
    assert se_orgnr.is_valid(SE_ORG)
    assert fodselsnummer.is_valid(NO_ID)
    assert personnummer.is_valid(SE_ID)


def business(**changes: Any) -> CustomerData:
    base = CustomerData(number="C-1", name="Fjord Fisk AS", kind="business", org_number=NO_ORG, address=OSLO)
    return dataclasses.replace(base, **changes)


def consumer(**changes: Any) -> CustomerData:
    base = CustomerData(number="C-2", name="Kari Nordmann", kind="consumer", address=OSLO)
    return dataclasses.replace(base, **changes)


def check(data: CustomerData) -> tuple[CustomerData, dict[str, str]]:
    violations = Violations()
    result = validate_customer(data, violations)
    return result, {v.field: v.description for v in violations}


def ok(data: CustomerData) -> CustomerData:
    result, violations = check(data)
    assert violations == {}
    return result


def fields(data: CustomerData) -> set[str]:
    return set(check(data)[1])


# --- the whole customer -------------------------------------------------------------------------


def test_valid_business_passes_and_is_normalised() -> None:
    result = ok(
        business(
            number="  C-1 ",
            name=" Fjord Fisk AS ",
            org_number="988 077 917",
            email=" Post@FjordFisk.NO ",
            phone="912 34 567",
            bank_accounts=("8601.11.17947",),
            channel_preferences=("ehf", "email"),
            email_consent=True,
        )
    )
    assert result.number == "C-1"
    assert result.name == "Fjord Fisk AS"
    assert result.org_number == "988077917"
    assert result.email == "post@fjordfisk.no"
    assert result.phone == "+4791234567"
    assert result.language == "nb"
    assert result.bank_accounts == ("86011117947",)
    assert result.channel_preferences == ("ehf", "email")
    assert result.email_consent is True
    assert result.sms_consent is False
    assert result.address == OSLO


def test_valid_swedish_consumer_passes() -> None:
    result = ok(consumer(address=STOCKHOLM, national_id=SE_ID, phone="070-123 45 67"))
    assert result.national_id == personnummer.compact(SE_ID)
    assert result.phone == "+46701234567"
    assert result.language == "sv"


def test_every_wrong_field_is_reported_at_once() -> None:
    data = CustomerData(
        number=" ",
        name="",
        kind="partnership",  # type: ignore[arg-type]
        org_number="123",
        email="not-an-address",
        phone="12",
        address=Address(lines=(" ",), postal_code="ABCD", city="", country="no"),
        language="de",
        bank_accounts=("8601.11.17947", "1234"),
        channel_preferences=("email", "fax"),
    )
    assert fields(data) == {
        "customer.number",
        "customer.name",
        "customer.kind",
        "customer.address.lines",
        "customer.address.city",
        "customer.address.postal_code",
        "customer.org_number",
        "customer.email",
        "customer.phone",
        "customer.language",
        "customer.bank_accounts[1]",
        "customer.channel_preferences[1]",
    }


def test_field_paths_use_the_given_prefix() -> None:
    violations = Violations()
    validate_customer(business(name=""), violations, prefix="customers[3]")
    assert [v.field for v in violations] == ["customers[3].name"]


def test_violations_raise_as_invalid_argument() -> None:
    violations = Violations()
    validate_customer(business(email="x"), violations)
    with pytest.raises(InvalidArgument) as caught:
        violations.raise_if_any()
    assert caught.value.violations[0].field == "customer.email"


def test_customer_number_at_most_64_characters() -> None:
    ok(business(number="N" * 64))
    assert fields(business(number="N" * 65)) == {"customer.number"}


@pytest.mark.parametrize("country", ["Norway", "N", "N0", ""])
def test_country_must_be_an_iso_code(country: str) -> None:
    assert fields(consumer(address=Address(("Gate 1",), "0155", "Oslo", country))) == {
        "customer.address.country"
    }


def test_address_is_required() -> None:
    assert fields(consumer(address=None)) == {"customer.address"}


# --- organisation numbers -----------------------------------------------------------------------


@pytest.mark.parametrize("body", ["98807791", "92345678", "81234567", "99999999", "81100000"])
def test_valid_norwegian_org_number(body: str) -> None:
    number = no_org_number(body)
    assert ok(business(org_number=number)).org_number == number


@pytest.mark.parametrize("number", ["988077918", "98807791", "9880779170", "98807791X", "NO988077917MVA"])
def test_invalid_norwegian_org_number(number: str) -> None:
    assert not no_orgnr.is_valid(number)
    _, violations = check(business(org_number=number))
    assert set(violations) == {"customer.org_number"}
    assert "NO organisation number" in violations["customer.org_number"]


@pytest.mark.parametrize("body", ["556036079", "202100530", "969663300", "556677889"])
def test_valid_swedish_org_number(body: str) -> None:
    number = se_org_number(body)
    assert ok(business(org_number=number, address=STOCKHOLM)).org_number == number
    dashed = f"{number[:6]}-{number[6:]}"
    assert ok(business(org_number=dashed, address=STOCKHOLM)).org_number == number


def test_invalid_swedish_org_number() -> None:
    wrong = SE_ORG[:-1] + str((int(SE_ORG[-1]) + 1) % 10)
    _, violations = check(business(org_number=wrong, address=STOCKHOLM))
    assert set(violations) == {"customer.org_number"}
    assert "SE organisation number" in violations["customer.org_number"]


def test_swedish_org_number_is_checked_as_swedish() -> None:
    assert fields(business(org_number=NO_ORG, address=STOCKHOLM)) == {"customer.org_number"}
    assert fields(business(org_number=SE_ORG, address=OSLO)) == {"customer.org_number"}


@pytest.mark.parametrize("address", [OSLO, STOCKHOLM], ids=["NO", "SE"])
def test_business_in_the_nordics_needs_an_org_number(address: Address) -> None:
    _, violations = check(business(org_number="", address=address))
    assert set(violations) == {"customer.org_number"}
    assert violations["customer.org_number"] == f"required for a business in {address.country}"


def test_consumer_needs_no_org_number() -> None:
    ok(consumer())


def test_foreign_business_org_number_is_kept_as_given() -> None:
    berlin = Address(lines=("Unter den Linden 1",), postal_code="10117", city="Berlin", country="DE")
    assert ok(business(org_number=" HRB 12345 ", address=berlin)).org_number == "HRB 12345"
    assert ok(business(org_number="", address=berlin)).org_number == ""


# --- national identity numbers ------------------------------------------------------------------


@pytest.mark.parametrize("body", ["150190123", "010101001", "311299499", "290296567"])
def test_valid_fodselsnummer(body: str) -> None:
    number = no_national_id(body)
    assert ok(consumer(national_id=number)).national_id == number


@pytest.mark.parametrize("body", ["880320001", "121212121", "010101010"])
def test_valid_personnummer(body: str) -> None:
    number = se_national_id(body)
    result = ok(consumer(national_id=number, address=STOCKHOLM))
    assert result.national_id == personnummer.compact(number)
    assert personnummer.is_valid(result.national_id)


INVALID_IDS = [
    ("NO", NO_ID[:-1] + str((int(NO_ID[-1]) + 1) % 10)),
    ("NO", NO_ID[:10]),
    ("NO", "32019012345"),
    ("SE", SE_ID[:-1] + str((int(SE_ID[-1]) + 1) % 10)),
    ("SE", NO_ID),
    ("NO", SE_ID),
]


@pytest.mark.parametrize(("country", "national_id"), INVALID_IDS)
def test_invalid_national_id_is_never_echoed(country: str, national_id: str) -> None:
    address = OSLO if country == "NO" else STOCKHOLM
    violations = Violations()
    result = validate_customer(consumer(national_id=national_id, address=address), violations)
    assert [v.field for v in violations] == ["customer.national_id"]
    assert result.national_id == ""
    with pytest.raises(InvalidArgument) as caught:
        violations.raise_if_any()
    text = " ".join(
        [caught.value.message, str(caught.value), *(v.description for v in caught.value.violations)]
    )
    assert national_id not in text
    assert national_id[:6] not in text
    assert "not a valid national identity number" in text


def test_business_has_no_national_id() -> None:
    _, violations = check(business(national_id=NO_ID))
    assert violations == {"customer.national_id": "only consumers have a national identity number"}
    assert NO_ID not in violations["customer.national_id"]


@pytest.mark.parametrize(
    ("national_id", "masked"),
    [
        ("15019012317", "150190*****"),
        ("880320-0016", "880320*****"),
        ("1234567", "123456*"),
        ("123456", ""),
        ("", ""),
    ],
)
def test_mask_national_id(national_id: str, masked: str) -> None:
    assert mask_national_id(national_id) == masked


@given(st.text(alphabet="0123456789-", min_size=7, max_size=13))
def test_mask_keeps_only_the_first_six_characters(national_id: str) -> None:
    masked = mask_national_id(national_id)
    assert len(masked) == len(national_id)
    assert masked[:6] == national_id[:6]
    assert set(masked[6:]) == {"*"}


# --- phone numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "address", "e164"),
    [
        ("91234567", OSLO, "+4791234567"),
        ("912 34 567", OSLO, "+4791234567"),
        ("+47 912 34 567", OSLO, "+4791234567"),
        ("+4791234567", OSLO, "+4791234567"),
        ("0047 91234567", OSLO, "+4791234567"),
        ("+4791234567", STOCKHOLM, "+4791234567"),
        ("070-123 45 67", STOCKHOLM, "+46701234567"),
        ("+46 8 123 456 78", OSLO, "+46812345678"),
    ],
)
def test_phone_is_normalised_to_e164(phone: str, address: Address, e164: str) -> None:
    assert ok(consumer(phone=phone, address=address)).phone == e164


@pytest.mark.parametrize("phone", ["12345", "abc", "+47 123", "+999 1234567"])
def test_invalid_phone(phone: str) -> None:
    result, violations = check(consumer(phone=phone))
    assert set(violations) == {"customer.phone"}
    assert result.phone == ""


def test_national_phone_needs_a_country() -> None:
    assert fields(consumer(phone="91234567", address=None)) == {"customer.address", "customer.phone"}
    assert "customer.phone" not in fields(consumer(phone="+4791234567", address=None))


def test_phone_is_optional() -> None:
    assert ok(consumer(phone="")).phone == ""


# --- e-mail -------------------------------------------------------------------------------------


@pytest.mark.parametrize("email", ["kari@example.no", "first.last+tag@mail.example.co.uk", "K@EXAMPLE.SE"])
def test_valid_email(email: str) -> None:
    assert ok(consumer(email=email)).email == email.lower()


def test_email_surrounding_spaces_are_dropped_before_the_check() -> None:
    assert ok(consumer(email=" Kari@Example.NO\t")).email == "kari@example.no"


@pytest.mark.parametrize(
    "email", ["kari", "kari@", "@example.no", "kari@example", "kari@example.n", "a b@c.no", "a@@b.no"]
)
def test_invalid_email(email: str) -> None:
    _, violations = check(consumer(email=email))
    assert set(violations) == {"customer.email"}


# --- postal codes -------------------------------------------------------------------------------


def address_in(country: str, postal_code: str) -> Address:
    return Address(lines=("Gate 1",), postal_code=postal_code, city="By", country=country)


@pytest.mark.parametrize(
    ("country", "postal_code"),
    [("NO", "0155"), ("NO", "9990"), ("NO", " 0155 "), ("SE", "11151"), ("SE", "111 51"), ("DK", "2100")],
)
def test_valid_postal_code(country: str, postal_code: str) -> None:
    ok(consumer(address=address_in(country, postal_code)))


@pytest.mark.parametrize(
    ("country", "postal_code"),
    [
        ("NO", "155"),
        ("NO", "01555"),
        ("NO", "01 55"),
        ("NO", "O155"),
        ("SE", "1115"),
        ("SE", "111511"),
        ("SE", "111  51"),
        ("SE", "11 151"),
        ("DK", "21000"),
    ],
)
def test_invalid_postal_code(country: str, postal_code: str) -> None:
    _, violations = check(consumer(address=address_in(country, postal_code)))
    assert set(violations) == {"customer.address.postal_code"}
    assert country in violations["customer.address.postal_code"]


@pytest.mark.parametrize("country", ["NO", "SE", "DE"])
def test_postal_code_is_required(country: str) -> None:
    assert fields(consumer(address=address_in(country, " "))) == {"customer.address.postal_code"}


def test_postal_code_of_other_countries_is_not_checked() -> None:
    ok(consumer(address=address_in("GB", "SW1A 1AA")))


def test_country_is_read_case_insensitively() -> None:
    assert ok(consumer(address=address_in("se", "111 51"))).language == "sv"


# --- language -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("country", "language"), [("NO", "nb"), ("SE", "sv"), ("DK", "da"), ("DE", "en"), ("FI", "en")]
)
def test_language_defaults_by_country(country: str, language: str) -> None:
    postal = {"NO": "0155", "SE": "11151", "DK": "2100"}.get(country, "00100")
    assert ok(consumer(address=address_in(country, postal))).language == language


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_given_language_is_kept(language: str) -> None:
    assert ok(consumer(language=language)).language == language


@pytest.mark.parametrize("language", ["de", "NB", "no", "fi"])
def test_unknown_language(language: str) -> None:
    assert fields(consumer(language=language)) == {"customer.language"}


# --- bank accounts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("account", "stored"),
    [
        ("86011117947", "86011117947"),
        ("8601.11.17947", "86011117947"),
        ("8601 11 17947", "86011117947"),
        ("NO9386011117947", "NO9386011117947"),
        ("NO93 8601 1117 947", "NO9386011117947"),
        ("no93 8601 1117 947", "NO9386011117947"),
        ("SE45 5000 0000 0583 9825 7466", "SE4550000000058398257466"),
    ],
)
def test_valid_bank_account_is_stored_compact(account: str, stored: str) -> None:
    assert ok(consumer(bank_accounts=(account,))).bank_accounts == (stored,)


@pytest.mark.parametrize(
    "account", ["86011117948", "1234", "NO9486011117947", "SE4450000000058398257466", ""]
)
def test_invalid_bank_account(account: str) -> None:
    result, violations = check(consumer(bank_accounts=("86011117947", account)))
    assert set(violations) == {"customer.bank_accounts[1]"}
    assert result.bank_accounts == ("86011117947",)


# --- channels -----------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_known_channel(channel: str) -> None:
    assert ok(consumer(channel_preferences=(channel,))).channel_preferences == (channel,)


@pytest.mark.parametrize("channel", ["fax", "EMAIL", "", "pigeon"])
def test_unknown_channel(channel: str) -> None:
    _, violations = check(consumer(channel_preferences=("sms", channel)))
    assert set(violations) == {"customer.channel_preferences[1]"}
    assert "unknown channel" in violations["customer.channel_preferences[1]"]


# --- properties ---------------------------------------------------------------------------------


@given(st.text(alphabet="0123456789", min_size=8, max_size=8))
def test_any_norwegian_org_number_passes_and_any_other_check_digit_fails(body: str) -> None:
    valid = [body + d for d in "0123456789" if no_orgnr.is_valid(body + d)]
    assert len(valid) <= 1
    for digit in "0123456789":
        number = body + digit
        assert ("customer.org_number" in fields(business(org_number=number))) is (number not in valid)


@given(st.text(alphabet="0123456789", min_size=9, max_size=9), st.integers(min_value=1, max_value=9))
def test_any_swedish_org_number_passes_and_a_wrong_check_digit_fails(body: str, shift: int) -> None:
    number = se_org_number(body)
    assert ok(business(org_number=number, address=STOCKHOLM)).org_number == number
    wrong = body + str((int(number[-1]) + shift) % 10)
    assert fields(business(org_number=wrong, address=STOCKHOLM)) == {"customer.org_number"}


@given(
    st.dates(min_value=date(1900, 1, 1), max_value=date(2039, 12, 31)),
    st.integers(min_value=0, max_value=999),
)
def test_any_personnummer_passes(born: date, birth_number: int) -> None:
    number = se_national_id(f"{born:%y%m%d}{birth_number:03d}")
    assert ok(consumer(national_id=number, address=STOCKHOLM)).national_id == personnummer.compact(number)


@given(st.text(alphabet="0123456789", min_size=11, max_size=11))
def test_an_invalid_fodselsnummer_is_never_echoed(national_id: str) -> None:
    violations = Violations()
    result = validate_customer(consumer(national_id=national_id), violations)
    if fodselsnummer.is_valid(national_id):
        assert result.national_id == national_id
        assert not violations
    else:
        assert result.national_id == ""
        assert all(national_id not in v.description for v in violations)
