"""The creditor's profile: every wrong field named at once, identifiers normalised, logos that are
pictures and nothing else, and the event that announces a version without the logo's bytes."""

from __future__ import annotations

import dataclasses
import hashlib
import struct
import zlib
from typing import Any

import pytest

from services.common.creditor import (
    MAX_LOGO_BYTES,
    PostalAddress,
    ProfileInput,
    check_profile,
    logo_problem,
    profile_input,
)
from services.common.errors import InvalidArgument
from services.ledger.profiles import event_data, profile_doc, profile_from_doc
from services.ledger.sandbox import SANDBOX_LOGO, sandbox_profile

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 8 8"><rect width="8" height="8"/></svg>'


def png(width: int = 1, height: int = 1) -> bytes:
    """A real (tiny, grey) PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + b"\x80" * width for _ in range(height)))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def norwegian(**changes: Any) -> ProfileInput:
    base = ProfileInput(
        legal_name="Fjordbris AS",
        org_number="974 760 673",
        jurisdiction="NO",
        company_form="as",
        address_lines=("Storgata 1",),
        postal_code="0155",
        city="Oslo",
        bank_account="8601.11.17947",
        iban="NO93 8601 1117 947",
        bic="dnbanokkxxx",
        email="Faktura@Fjordbris.no",
        phone="22 33 44 55",
        website="https://fjordbris.no",
        logo=SVG,
        accent_colour="#0b4f6c",
        footer="Takk for handelen!",
    )
    return dataclasses.replace(base, **changes)


def swedish(**changes: Any) -> ProfileInput:
    base = ProfileInput(
        legal_name="Fjällbris AB",
        org_number="556036-0793",
        jurisdiction="SE",
        company_form="AB",
        address_lines=("Storgatan 1",),
        postal_code="111 22",
        city="Stockholm",
        bankgiro="50501055",
        f_tax_approved=True,
    )
    return dataclasses.replace(base, **changes)


def wrong(given: ProfileInput) -> dict[str, str]:
    with pytest.raises(InvalidArgument) as caught:
        check_profile(given)
    found: dict[str, str] = {}
    for v in caught.value.violations:
        assert v.field not in found, f"{v.field} reported twice"
        found[v.field] = v.description
    return found


def test_a_norwegian_profile_is_normalised() -> None:
    profile = check_profile(norwegian())

    assert profile.org_number == "974760673"
    assert profile.company_form == "AS"
    assert profile.bank_account == "86011117947"
    assert profile.iban == "NO9386011117947"
    assert profile.bic == "DNBANOKKXXX"
    assert profile.email == "faktura@fjordbris.no"
    assert profile.phone == "+4722334455"
    assert profile.accent_colour == "#0B4F6C"
    assert profile.address.country == "NO"
    assert profile.logo_media_type == "image/svg+xml"
    assert profile.vat_id == "NO974760673MVA"
    assert profile.in_enterprise_register
    assert profile.logo_sha256 == hashlib.sha256(SVG).hexdigest()


def test_a_swedish_profile_pays_by_bankgiro() -> None:
    profile = check_profile(swedish(plusgiro="47845"))

    assert profile.org_number == "5560360793"
    assert profile.bankgiro == "5050-1055"
    assert profile.plusgiro == "4784-5"
    assert profile.vat_id == "SE556036079301"
    assert not profile.in_enterprise_register
    assert profile.f_tax_approved


def test_checking_a_checked_profile_changes_nothing() -> None:
    for given in (norwegian(), swedish(plusgiro="47845", iban="SE4550000000058398257466", bic="ESSESESS")):
        profile = check_profile(given)
        assert check_profile(profile_input(profile)) == profile


def test_every_wrong_field_is_named_at_once() -> None:
    found = wrong(
        ProfileInput(
            legal_name=" ",
            org_number="974760674",
            jurisdiction="NO",
            company_form="GmbH",
            address_lines=(),
            postal_code="01555",
            city="",
            country="Norge",
            bank_account="86011117948",
            iban="NO93 8601 1117 948",
            bic="DNBA1OKK",
            bankgiro="5050-1056",
            plusgiro="47842",
            email="faktura@",
            phone="12",
            website="fjordbris.no",
            logo=b"GIF89a....",
            accent_colour="blue",
            footer="Betal til \u202ekonto",
            payment_terms_days=0,
            f_tax_approved=True,
        )
    )

    assert set(found) == {
        "legal_name",
        "org_number",
        "company_form",
        "address.lines",
        "address.city",
        "address.country",
        "bank_account",
        "iban",
        "bic",
        "bankgiro",
        "plusgiro",
        "email",
        "phone",
        "website",
        "logo",
        "accent_colour",
        "footer",
        "payment_terms_days",
        "f_tax_approved",
        "payment_means",
    }
    assert "974760674" in found["org_number"]
    assert "'GmbH' is not a company form in NO (known: ANS, AS, ASA," in found["company_form"]
    assert "U+202E" in found["footer"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("org_number", "556036-0793", "not a valid NO organisation number"),
        ("company_form", "AB", "not a company form in NO"),
        ("bank_account", "1234.56.78901", "not a valid Norwegian account number"),
        ("iban", "NO93 8601 1117 948", "not a valid IBAN"),
        ("iban", "NO78 1503 2080 100", "is not the IBAN of account number 86011117947"),
        ("bic", "DNBANOK", "not a BIC"),
        ("email", "faktura fjordbris.no", "not an e-mail address"),
        ("phone", "+47 123", "phone number"),
        ("website", "ftp://fjordbris.no", "https://"),
        ("website", "https://localhost", "not a web address"),
        ("website", "https://user:pw@fjordbris.no", "not a web address"),
        ("accent_colour", "#12345", "#RRGGBB"),
        ("accent_colour", "#GG0000", "#RRGGBB"),
        ("footer", "x" * 501, "at most 500"),
        ("footer", "line\x07bell", "control"),
        ("legal_name", "x" * 201, "at most 200"),
        ("payment_terms_days", 366, "1..365"),
        ("payment_terms_days", -1, "1..365"),
        ("postal_code", "155", "not a postal code in NO"),
        ("address_lines", tuple(f"line {i}" for i in range(6)), "at most 5"),
        ("f_tax_approved", True, "only for SE"),
        ("jurisdiction", "DK", "NO or SE"),
    ],
)
def test_one_wrong_field(field: str, value: Any, message: str) -> None:
    found = wrong(norwegian(**{field: value}))

    name = {
        "postal_code": "address.postal_code",
        "address_lines": "address.lines",
    }.get(field, field)
    assert name in found, found
    assert message in found[name]


def test_a_bic_goes_with_an_iban() -> None:
    found = wrong(norwegian(iban=""))
    assert set(found) == {"bic"}
    assert "IBAN" in found["bic"]


@pytest.mark.parametrize(
    ("jurisdiction_input", "means"),
    [
        (norwegian(bank_account="", iban="", bic=""), "bank_account or iban"),
        (swedish(bankgiro=""), "bankgiro, plusgiro or iban"),
        # A Swedish bankgiro is no way to pay a Norwegian creditor, nor a Norwegian account a Swedish one.
        (norwegian(bank_account="", iban="", bic="", bankgiro="50501055"), "bank_account or iban"),
        (swedish(bankgiro="", bank_account="86011117947"), "bankgiro, plusgiro or iban"),
    ],
)
def test_a_creditor_can_be_paid_in_its_jurisdiction(jurisdiction_input: ProfileInput, means: str) -> None:
    found = wrong(jurisdiction_input)
    assert set(found) == {"payment_means"}
    assert means in found["payment_means"]


@pytest.mark.parametrize(
    "given",
    [
        norwegian(iban="", bic=""),
        norwegian(bank_account=""),
        swedish(bankgiro="", plusgiro="47845"),
        swedish(bankgiro="", iban="SE4550000000058398257466"),
    ],
)
def test_one_way_to_pay_is_enough(given: ProfileInput) -> None:
    check_profile(given)


@pytest.mark.parametrize(
    ("field", "value", "printed"),
    [
        ("bankgiro", "5050-1055", "5050-1055"),
        ("bankgiro", "50501055", "5050-1055"),
        ("bankgiro", "123 4566", "123-4566"),
        ("plusgiro", "47845", "4784-5"),
        ("plusgiro", "4784-5", "4784-5"),
    ],
)
def test_giro_numbers_are_printed_with_a_dash(field: str, value: str, printed: str) -> None:
    assert getattr(check_profile(swedish(**{field: value})), field) == printed


@pytest.mark.parametrize(("field", "value"), [("bankgiro", "5050-1056"), ("plusgiro", "47842")])
def test_giro_numbers_are_luhn_checked(field: str, value: str) -> None:
    assert "check digit (Luhn)" in wrong(swedish(**{field: value}))[field]


def test_bankgiro_has_seven_or_eight_digits() -> None:
    assert "7-8 digits" in wrong(swedish(bankgiro="505010554"))["bankgiro"]
    assert "7-8 digits" in wrong(swedish(bankgiro="50510"))["bankgiro"]


def test_company_forms_are_per_jurisdiction() -> None:
    for form in ("AS", "ASA", "NUF", "ENK", "DA", "ANS", "SA"):
        assert check_profile(norwegian(company_form=form)).company_form == form
    for form in ("AB", "HB", "KB", "EF"):
        assert check_profile(swedish(company_form=form)).company_form == form
    assert not check_profile(norwegian(company_form="ENK")).in_enterprise_register
    assert check_profile(norwegian(company_form="NUF")).in_enterprise_register


def test_no_vat_id_when_not_vat_registered() -> None:
    assert check_profile(norwegian(vat_registered=False)).vat_id == ""


def test_postal_codes_abroad_are_not_held_to_norwegian_rules() -> None:
    profile = check_profile(
        norwegian(company_form="NUF", country="gb", postal_code="SW1A 1AA", city="London")
    )
    assert profile.address.country == "GB"


# --- logos -------------------------------------------------------------------------------------


def test_a_png_logo_is_accepted() -> None:
    profile = check_profile(norwegian(logo=png(4, 2)))
    assert profile.logo_media_type == "image/png"


def test_the_sandbox_logo_is_a_harmless_svg() -> None:
    assert logo_problem(SANDBOX_LOGO) == ("", "image/svg+xml")


@pytest.mark.parametrize(
    ("logo", "message"),
    [
        (b"GIF89a\x01\x00\x01\x00", "not a PNG or SVG"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "not a PNG image"),
        (b"<html><body/></html>", "not an SVG image"),
        (b"<svg viewBox='0 0 1 1'/>", "needs its namespace"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "<script>"),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg"><foreignObject><p>hi</p></foreignObject></svg>',
            "<foreignObject>",
        ),
        (b'<svg xmlns="http://www.w3.org/2000/svg" onload="steal()"/>', "event handlers"),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
            b'<image xlink:href="https://tracker.example/p.png"/></svg>',
            "outside itself",
        ),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><use href="other.svg#a"/></svg>', "outside itself"),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg"><a><set attributeName="href" to="java&#10;script:x()"/>'
            b"</a></svg>",
            "change links or run code",
        ),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg"><a><animate attributeName="xlink:href" values="#a"/>'
            b"</a></svg>",
            "change links or run code",
        ),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg"><style>@import url(https://x.example/a.css);</style></svg>',
            "<style>",
        ),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg"><rect style="fill:url(https://x.example/p)"/></svg>',
            "from elsewhere",
        ),
        (
            b'<?xml-stylesheet href="https://x.example/a.css"?><svg xmlns="http://www.w3.org/2000/svg"/>',
            "processing instructions",
        ),
        (
            b'<!DOCTYPE svg [<!ENTITY lol "lol">]><svg xmlns="http://www.w3.org/2000/svg">&lol;</svg>',
            "DOCTYPE",
        ),
        (
            b'<!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<svg xmlns="http://www.w3.org/2000/svg">&x;</svg>',
            "DOCTYPE",
        ),
        (b'<svg xmlns="http://www.w3.org/2000/svg">' + b" " * MAX_LOGO_BYTES + b"</svg>", "at most 256 KiB"),
    ],
)
def test_a_logo_that_is_more_than_a_picture_is_refused(logo: bytes, message: str) -> None:
    found = wrong(norwegian(logo=logo))
    assert set(found) == {"logo"}
    assert message in found["logo"]


def test_inner_references_and_embedded_images_are_fine() -> None:
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
        b'<defs><linearGradient id="g"><stop offset="0"/></linearGradient></defs>'
        b'<rect fill="url(#g)" width="4" height="4"/><use xlink:href="#g"/>'
        b'<image href="data:image/png;base64,iVBORw0KGgo="/></svg>'
    )
    assert check_profile(norwegian(logo=svg)).logo_media_type == "image/svg+xml"


# --- storage and events -------------------------------------------------------------------------


def test_a_stored_version_reads_back_as_it_was() -> None:
    profile = check_profile(norwegian(logo=png())).model_copy(update={"version": 3})
    doc = profile_doc("t1", profile, now=None, actor="operator")  # type: ignore[arg-type]

    assert doc["_id"] == "t1:3"
    assert (doc["tenant_id"], doc["version"]) == ("t1", 3)
    assert profile_from_doc(doc) == profile


def test_the_event_carries_the_logos_digest_not_the_logo() -> None:
    profile = check_profile(norwegian(logo=png())).model_copy(update={"version": 2})

    data = event_data("t1", profile)

    dumped = data.model_dump()
    assert (dumped["tenant_id"], dumped["version"]) == ("t1", 2)
    assert "logo" not in dumped["profile"]
    assert dumped["profile"]["logo_sha256"] == hashlib.sha256(profile.logo).hexdigest()
    assert dumped["profile"]["logo_media_type"] == "image/png"
    assert dumped["profile"]["vat_id"] == "NO974760673MVA"
    assert dumped["profile"]["in_enterprise_register"] is True
    assert dumped["profile"]["address"]["lines"] == ["Storgata 1"]
    assert b"IHDR" not in data.model_dump_json().encode()


def test_the_sandbox_profile_is_a_valid_norwegian_as() -> None:
    profile = check_profile(sandbox_profile("Sandbox AS"))

    assert (profile.legal_name, profile.company_form, profile.vat_id) == (
        "Sandbox AS",
        "AS",
        "NO999999999MVA",
    )
    assert profile.in_enterprise_register
    assert (profile.bank_account, profile.iban, profile.bic) == (
        "86011117947",
        "NO9386011117947",
        "DNBANOKKXXX",
    )
    assert profile.address == PostalAddress(
        lines=("Fjordalléen 16",), postal_code="0250", city="Oslo", country="NO"
    )
    assert (profile.email, profile.phone) == ("faktura@sandbox.fordring.example", "+4722123456")
    assert profile.website == "https://sandbox.fordring.example"
    assert (profile.payment_terms_days, profile.ehf_attach_pdf, profile.logo_media_type) == (
        14,
        True,
        "image/svg+xml",
    )
