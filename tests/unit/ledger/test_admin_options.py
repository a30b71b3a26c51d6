"""`tenants create|update` options: only the options given change the profile, and every error names
the option that sets the wrong field."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from services.common.creditor import ProfileInput, check_profile
from services.common.errors import FieldViolation, InvalidArgument
from services.common.tenancy import Tenant
from services.ledger.admin import NewTenant, check_new_profile, describe, error_lines, parser, profile_changes
from services.ledger.profiles import ProfileVersion, provisional_profile
from services.ledger.sandbox import SANDBOX_LOGO


def changes(*argv: str) -> dict[str, object]:
    return profile_changes(parser().parse_args(["tenants", *argv]))


def test_update_changes_only_the_options_given() -> None:
    assert changes("update", "t1", "--iban", "NO9386011117947", "--payment-terms", "30") == {
        "iban": "NO9386011117947",
        "payment_terms_days": 30,
    }


def test_every_profile_option_reaches_its_field(tmp_path: Path) -> None:
    logo = tmp_path / "logo.svg"
    logo.write_bytes(SANDBOX_LOGO)

    found = changes(
        "update", "t1", "--org-number", "974760673", "--legal-name", "Fjordbris AS", "--company-form", "AS",
        "--address-line", "Storgata 1", "--address-line", "Postboks 7", "--postal-code", "0155",
        "--city", "Oslo", "--country", "NO", "--bank-account", "86011117947", "--iban", "NO9386011117947",
        "--bic", "DNBANOKK", "--bankgiro", "5050-1055", "--plusgiro", "4784-5", "--email", "a@b.no",
        "--phone", "+4722334455", "--website", "https://b.no", "--logo", str(logo),
        "--accent-colour", "#000000", "--footer", "Takk", "--payment-terms", "10",
        "--no-ehf-attach-pdf", "--f-tax-approved", "--not-vat-registered",
    )  # fmt: skip

    assert found == {
        "org_number": "974760673",
        "legal_name": "Fjordbris AS",
        "company_form": "AS",
        "address_lines": ("Storgata 1", "Postboks 7"),
        "postal_code": "0155",
        "city": "Oslo",
        "country": "NO",
        "bank_account": "86011117947",
        "iban": "NO9386011117947",
        "bic": "DNBANOKK",
        "bankgiro": "5050-1055",
        "plusgiro": "4784-5",
        "email": "a@b.no",
        "phone": "+4722334455",
        "website": "https://b.no",
        "logo": SANDBOX_LOGO,
        "accent_colour": "#000000",
        "footer": "Takk",
        "payment_terms_days": 10,
        "ehf_attach_pdf": False,
        "f_tax_approved": True,
        "vat_registered": False,
    }
    assert set(found) - {"org_number"} <= set(ProfileInput.__dataclass_fields__)


def test_flags_can_be_turned_back_and_the_logo_removed() -> None:
    assert changes(
        "update", "t1", "--vat-registered", "--ehf-attach-pdf", "--no-f-tax-approved", "--no-logo"
    ) == {
        "vat_registered": True,
        "ehf_attach_pdf": True,
        "f_tax_approved": False,
        "logo": b"",
    }


def test_create_without_profile_options_makes_no_profile() -> None:
    assert changes("create", "--name", "Fjordbris AS", "--org-number", "974760673") == {}


def test_an_unreadable_logo_is_named() -> None:
    with pytest.raises(InvalidArgument) as caught:
        changes("update", "t1", "--logo", "/no/such/logo.png")
    assert error_lines(caught.value) == [
        "error: --logo (logo): cannot read /no/such/logo.png: No such file or directory"
    ]


def test_errors_name_the_option() -> None:
    wrong = InvalidArgument(
        [
            FieldViolation("address.lines[1]", "contains a control character"),
            FieldViolation("address.postal_code", "'1' is not a postal code in NO"),
            FieldViolation("payment_terms_days", "must be 1..365 days, got 0"),
            FieldViolation("bank_account", "not valid"),
            FieldViolation("accent_colour", "not a colour"),
        ]
    )

    assert error_lines(wrong) == [
        "error: --address-line (address.lines[1]): contains a control character",
        "error: --postal-code (address.postal_code): '1' is not a postal code in NO",
        "error: --payment-terms (payment_terms_days): must be 1..365 days, got 0",
        "error: --bank-account (bank_account): not valid",
        "error: --accent-colour (accent_colour): not a colour",
    ]


def test_a_new_tenants_number_is_reported_once() -> None:
    new = NewTenant(name="", org_number="123456789")

    profile, wrong = check_new_profile(
        new, {"city": "Oslo", "address_lines": ("Gate 1",), "postal_code": "0155"}
    )

    assert profile is None
    assert [v.field for v in wrong] == ["payment_means"]  # name and number: check_new_tenant says it


def test_the_legal_name_defaults_to_the_tenants_name() -> None:
    new = NewTenant(name="Fjordbris AS", org_number="974760673")

    profile, wrong = check_new_profile(
        new,
        {"city": "Oslo", "address_lines": ("Gate 1",), "postal_code": "0155", "bank_account": "86011117947"},
    )

    assert wrong == []
    assert profile is not None
    assert (profile.legal_name, profile.org_number, profile.version) == ("Fjordbris AS", "974760673", 0)


def test_show_prints_one_line_per_field() -> None:
    tenant = Tenant(id="t1", name="Fjordbris", org_number="974760673")
    profile = check_profile(
        ProfileInput(
            legal_name="Fjordbris AS",
            org_number="974760673",
            company_form="AS",
            address_lines=("Storgata 1",),
            postal_code="0155",
            city="Oslo",
            bank_account="86011117947",
        )
    ).model_copy(update={"version": 3})

    shown = describe(tenant, ProfileVersion(profile, None))

    assert shown[:4] == [
        "tenant         t1  Fjordbris",
        "version        3",
        "legal_name     Fjordbris AS",
        "org_number     974760673 (AS)",
    ]
    assert "address        Storgata 1, 0155 Oslo, NO" in shown
    assert "bank_account   8601.11.17947" in shown
    assert not any(line.startswith(("iban", "logo", "f_tax_approved")) for line in shown)
    provisional = describe(tenant, ProfileVersion(provisional_profile(tenant), None))
    assert any(line.startswith("note") and "no profile yet" in line for line in provisional)


def test_the_logo_can_come_on_standard_input(monkeypatch: pytest.MonkeyPatch) -> None:
    class Stdin:
        buffer = io.BytesIO(SANDBOX_LOGO)

    monkeypatch.setattr(sys, "stdin", Stdin)

    assert changes("update", "t1", "--logo", "-") == {"logo": SANDBOX_LOGO}
