"""Payment QR codes against their specifications' field rules, and the SVG they are drawn as."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import date

import pytest
import segno

from services.renderer.domain.qr import (
    EPC_MAX_BYTES,
    InvalidPaymentCode,
    epc_payload,
    payment_code,
    qr_svg,
    swedish_invoice_payload,
)
from tests.support.renderer_samples import (
    credit_note,
    eur_invoice,
    no_reminder,
    samples,
    se_invoice,
    se_reminder,
)

IBAN = "NO9386011117947"


def epc(**overrides: object) -> list[str]:
    arguments: dict[str, object] = {"name": "Fjordline Energi AS", "iban": IBAN, "amount_minor": 125000}
    arguments.update(overrides)
    return epc_payload(**arguments).split("\n")  # type: ignore[arg-type]


def test_epc_header_and_fields_in_order() -> None:
    fields = epc(bic="DNBANOKKXXX", reference="0001002302")
    assert fields[:4] == ["BCD", "002", "1", "SCT"]  # service tag, version 002, UTF-8, SEPA credit transfer
    assert fields[4] == "DNBANOKKXXX"
    assert fields[5] == "Fjordline Energi AS"
    assert fields[6] == IBAN
    assert fields[7] == "EUR1250.00"
    assert fields[8:] == ["", "", "0001002302"]  # purpose, structured reference, unstructured text


def test_epc_bic_is_optional_in_version_002() -> None:
    assert epc()[4] == ""


def test_epc_rf_creditor_reference_goes_in_the_structured_field() -> None:
    fields = epc(reference="RF18 5390 0754 7034")
    assert fields[9] == "RF18539007547034"
    assert len(fields) == 10  # trailing empty fields are left out


def test_epc_amount_format_and_range() -> None:
    assert epc(amount_minor=1)[7] == "EUR0.01"
    assert epc(amount_minor=99_999_999_999)[7] == "EUR999999999.99"
    for wrong in (0, -5, 100_000_000_000):
        with pytest.raises(InvalidPaymentCode, match="EPC amount"):
            epc(amount_minor=wrong)


def test_epc_name_is_cut_to_70_characters() -> None:
    assert len(epc(name="Å" * 90)[5]) == 70


def test_epc_refuses_invalid_iban_bic_purpose_and_long_text() -> None:
    with pytest.raises(InvalidPaymentCode, match="IBAN"):
        epc(iban="NO9386011117948")
    with pytest.raises(InvalidPaymentCode, match="BIC"):
        epc(bic="DNB")
    with pytest.raises(InvalidPaymentCode, match="purpose"):
        epc(purpose="gdds")
    with pytest.raises(InvalidPaymentCode, match="140"):
        epc(text="x" * 141)
    with pytest.raises(InvalidPaymentCode, match="name"):
        epc(name="   ")


def test_epc_payload_over_331_bytes_is_refused() -> None:
    within = epc_payload(name="A" * 70, iban=IBAN, bic="DNBANOKKXXX", amount_minor=1, text="t" * 140)
    assert len(within.encode()) <= EPC_MAX_BYTES
    with pytest.raises(InvalidPaymentCode, match="331 bytes"):
        epc_payload(name="Ø" * 70, iban=IBAN, amount_minor=1, text="æ" * 100, information="i" * 70)


def uqr(**overrides: object) -> dict[str, object]:
    arguments: dict[str, object] = {
        "name": "Ström & Söner Bygg AB",
        "account_type": "BG",
        "account": "5050-1055",
        "reference": "2051779",
        "invoice_date": date(2025, 3, 14),
        "due_date": date(2025, 4, 13),
        "amount_minor": 3772487,
        "org_number": "556677-8899",
    }
    arguments.update(overrides)
    payload = swedish_invoice_payload(**arguments)  # type: ignore[arg-type]
    assert re.fullmatch(r'\{.*"due":[0-9]+\.[0-9]{2},.*\}', payload)  # amount as a JSON number, two decimals
    parsed: dict[str, object] = json.loads(payload)
    return parsed


def test_swedish_invoice_qr_fields() -> None:
    assert uqr() == {
        "uqr": 1,
        "tp": 1,
        "nme": "Ström & Söner Bygg AB",
        "cc": "SE",
        "cid": "5566778899",
        "iref": "2051779",
        "idt": "20250314",
        "ddt": "20250413",
        "due": 37724.87,
        "cur": "SEK",
        "pt": "BG",
        "acc": "50501055",
    }


def test_swedish_invoice_qr_plusgiro_and_escaping() -> None:
    parsed = uqr(account_type="PG", account="90 20 01-2", name='Kafé "Blåbär" \\ AB')
    assert parsed["pt"] == "PG"
    assert parsed["acc"] == "9020012"
    assert parsed["nme"] == 'Kafé "Blåbär" \\ AB'


def test_swedish_invoice_qr_refuses_what_the_format_does_not_allow() -> None:
    with pytest.raises(InvalidPaymentCode, match="BG account"):
        uqr(account="123")
    with pytest.raises(InvalidPaymentCode, match="PG account"):
        uqr(account_type="PG", account="123456789")
    with pytest.raises(InvalidPaymentCode, match="reference"):
        uqr(reference="1" * 26)
    with pytest.raises(InvalidPaymentCode, match="due date"):
        uqr(due_date=date(2025, 3, 1))


def test_each_market_gets_its_code() -> None:
    eur = payment_code(eur_invoice())
    assert eur is not None
    assert eur.kind == "epc"
    assert "\nEUR4160.00\n" in eur.payload
    se = payment_code(se_invoice())
    assert se is not None
    assert se.kind == "uqr"
    reminder = payment_code(se_reminder())
    assert reminder is not None
    assert json.loads(reminder.payload)["ddt"] == "20250519"  # the reminder's new deadline
    no = payment_code(samples()["no_business_invoice"])
    assert no is not None
    assert (no.kind, no.payload) == ("link", "https://pay.fordring.example/i/10023-7fq2")
    assert payment_code(credit_note()) is None


def test_an_iban_that_fails_its_check_falls_back_to_the_link() -> None:
    view = eur_invoice()
    broken = replace(view, seller=replace(view.seller, iban="NO9386011117948"))
    code = payment_code(broken)
    assert code is not None
    assert code.kind == "link"


def test_nothing_to_pay_means_no_code() -> None:
    assert payment_code(replace(no_reminder(), amount_due_minor=0)) is None


def _modules(svg: str) -> set[tuple[int, int]]:
    dark: set[tuple[int, int]] = set()
    path = re.search(r'<path fill="#000" d="([^"]*)"', svg)
    assert path is not None
    for x, y, width in re.findall(r"M(\d+) (\d+)h(\d+)v1h-\d+z", path.group(1)):
        dark.update((int(x) + dx, int(y)) for dx in range(int(width)))
    return dark


def test_svg_draws_exactly_the_modules_of_a_mask_0_code_with_a_quiet_zone() -> None:
    payload = epc_payload(name="Fjordline Energi AS", iban=IBAN, amount_minor=125000, reference="0001002302")
    code = segno.make(payload, error="m", mask=0, micro=False, boost_error=False)
    assert code.mask == 0
    assert code.error == "M"
    expected = {(x + 4, y + 4) for y, row in enumerate(code.matrix) for x, bit in enumerate(row) if bit}
    svg = qr_svg(payload)
    assert _modules(svg) == expected
    size = len(code.matrix) + 8
    assert f'viewBox="0 0 {size} {size}"' in svg


def test_svg_is_cached_by_payload() -> None:
    first = qr_svg("https://pay.fordring.example/i/cache-test")
    assert qr_svg("https://pay.fordring.example/i/cache-test") is first
