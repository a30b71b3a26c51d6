"""ISO 20022 camt.054 and camt.053, versions 02-08: each TxDtls one payment, references where each
version puts them, declared totals checked, returns understood, hostile XML refused."""

from __future__ import annotations

from datetime import date

import pytest

from services.matcher.adapters.bankfiles import BankFileError, detect, parse
from tests.support.bankfiles import CAMT_VERSIONS, DAY, FilePayment, camt053, camt054

KID = "123456782"
PAYMENTS = [
    FilePayment(125_000, reference=KID, payer_name="Kari Nordmann", payer_account="12345678903",
                acct_svcr_ref="NETS-1", end_to_end_id="E2E-1", tx_id="TX-1", free_text="Faktura 10042",
                value_date=date(2025, 6, 19)),
    # One entry batching two payments: no references of their own but the entry's.
    FilePayment(10_000, reference="1234567-", entry=2, entry_ref="BATCH-9", payer_account="NO9386011117947"),
    FilePayment(20_050, extra_references=("RF18539007547034",), reference="RF471234567890", entry=2,
                entry_ref="BATCH-9"),
]  # fmt: skip


def problems_of(content: bytes) -> list[str]:
    with pytest.raises(BankFileError) as caught:
        parse(content)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize("version", CAMT_VERSIONS)
@pytest.mark.parametrize(("build", "kind"), [(camt054, "camt.054"), (camt053, "camt.053")])
def test_every_version_reads_the_same_payments(build, kind, version: str) -> None:  # type: ignore[no-untyped-def]
    content = build(PAYMENTS, version)

    assert detect(content) == kind
    file = parse(content)

    assert (file.format, file.version, file.creditor_account) == (kind, version, "NO9386011117947")
    assert (file.declared_count, file.declared_total_minor, file.created) == (3, 155_050, DAY)
    first, second, third = file.payments
    assert first.location == "Ntry 1 TxDtls 1"
    assert (first.amount_minor, first.currency, first.direction, first.reference) == (
        125_000,
        "NOK",
        "credit",
        KID,
    )
    assert (first.payer_name, first.payer_account, first.free_text) == (
        "Kari Nordmann",
        "12345678903",
        "Faktura 10042",
    )
    assert (first.booking_date, first.value_date) == (DAY, date(2025, 6, 19))
    assert first.bank_ids == {"acct_svcr_ref": "NETS-1", "end_to_end_id": "E2E-1", "tx_id": "TX-1"}
    assert first.bank_key == "camt:86011117947:NETS-1"
    assert (second.location, second.amount_minor, second.reference) == ("Ntry 2 TxDtls 1", 10_000, "1234567-")
    assert second.bank_ids == {"acct_svcr_ref": "BATCH-9", "entry_acct_svcr_ref": "BATCH-9"}
    assert [second.bank_key, third.bank_key] == ["camt:86011117947:BATCH-9/1", "camt:86011117947:BATCH-9/2"]
    assert (third.amount_minor, third.reference, third.free_text) == (
        20_050,
        "RF471234567890",
        "RF18539007547034",
    )


def test_a_notification_and_the_statement_give_one_transaction_one_key() -> None:
    notified = parse(camt054(PAYMENTS, "08"))
    stated = parse(camt053(PAYMENTS, "02", account="86011117947"))

    assert [p.bank_key for p in notified.payments] == [p.bank_key for p in stated.payments]
    assert notified.file_id != stated.file_id


def test_keys_without_account_servicer_references() -> None:
    file = parse(
        camt054([FilePayment(500, end_to_end_id="E-7"), FilePayment(600, tx_id="T-8"), FilePayment(700)])
    )

    assert [p.bank_key for p in file.payments] == [
        "camt:86011117947:e2e:E-7:500:2025-06-20",
        "camt:86011117947:tx:T-8:600:2025-06-20",
        "camt:86011117947:msg:MSG-1:3:1",
    ]
    assert all("end_to_end_id" not in p.bank_ids for p in file.payments[1:])  # NOTPROVIDED is none


def test_a_returned_payment_is_a_debit_naming_what_it_returns() -> None:
    paid = FilePayment(125_000, reference=KID, end_to_end_id="E2E-1", acct_svcr_ref="IN-1")
    returned = FilePayment(125_000, debit=True, return_reason="AC04", end_to_end_id="E2E-1",
                           acct_svcr_ref="OUT-1", returned_end_to_end_id="E2E-1")  # fmt: skip

    file = parse(camt053([paid, returned]))

    assert file.declared_total_minor == 0
    back = file.payments[1]
    assert (back.direction, back.amount_minor, back.return_reason) == ("debit", 125_000, "AC04")
    assert back.returned_ids == {"end_to_end_id": "E2E-1"}


def test_an_entry_with_one_transaction_without_an_amount_takes_the_entry_amount() -> None:
    content = camt054([FilePayment(4_200, reference=KID)], "08").replace(
        b'<TxDtls><Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs><Amt Ccy="NOK">42.00</Amt>'
        b"<CdtDbtInd>CRDT</CdtDbtInd>",
        b"<TxDtls><Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>",
    )

    assert parse(content).payments[0].amount_minor == 4_200


def test_namespace_free_prefixed_and_old_reference_spellings() -> None:
    content = camt054([FilePayment(100, reference=KID, payer_name="Ola")], "02")
    bare = content.replace(b' xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.02"', b"")
    prefixed = (
        content.replace(b"<Document xmlns=", b"<Document xmlns:c=")
        .replace(b"<", b"<c:")
        .replace(b"<c:/", b"</c:")
        .replace(b"<c:?xml", b"<?xml")
    )
    old = content.replace(b"<Ref>", b"<CdtrRef>").replace(b"</Ref>", b"</CdtrRef>")

    for variant in (bare, prefixed, old):
        payment = parse(variant).payments[0]
        assert (payment.reference, payment.payer_name, payment.amount_minor) == (KID, "Ola", 100)
    assert parse(bare).version == ""


def test_only_booked_entries_are_payments() -> None:
    content = camt054([FilePayment(100, reference=KID), FilePayment(200)], "08")
    pending = content.replace(b"<Sts><Cd>BOOK</Cd></Sts>", b"<Sts><Cd>PDNG</Cd></Sts>", 1)

    assert [p.amount_minor for p in parse(pending).payments] == [200]


# --- broken files --------------------------------------------------------------------------------


def test_declared_entries_and_sums_that_lie() -> None:
    problems = problems_of(camt054(PAYMENTS, "04", declared_entries=5, declared_sum="1.00"))

    assert [p.split(": ", 1)[1] for p in problems] == [
        "TtlNtries/NbOfNtries declares 5 entries, the file has 2",
        "TtlNtries/Sum declares 1.00, the entries sum to 1550.50",
    ]


def test_a_batch_whose_count_or_parts_do_not_add_up() -> None:
    assert any(
        "Btch/NbOfTxs declares 3 transactions, the entry holds 2" in p
        for p in problems_of(camt054(PAYMENTS, batch_count=3))
    )
    content = camt054(PAYMENTS, "08").replace(
        b'<Amt Ccy="NOK">100.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>',
        b'<Amt Ccy="NOK">100.01</Amt><CdtDbtInd>CRDT</CdtDbtInd>',
    )
    assert problems_of(content) == [
        "Ntry 2 (line 3): the transactions add up to 300.51 NOK, the entry is 300.50"
    ]


def test_bad_amount_currency_date_and_indicator() -> None:
    content = (
        camt054([FilePayment(100), FilePayment(200), FilePayment(300)], "08")
        .replace(b">1.00</Amt>", b">1,00</Amt>", 1)
        .replace(b"<BookgDt><Dt>2025-06-20</Dt>", b"<BookgDt><Dt>2025-02-30</Dt>", 1)
        .replace(b'Ccy="NOK">3.00', b'Ccy="NOKK">3.00', 1)
        .replace(b"<CdtDbtInd>CRDT</CdtDbtInd><Sts>", b"<CdtDbtInd>CREDIT</CdtDbtInd><Sts>", 1)
    )

    reasons = [p.split(": ", 1)[1] for p in problems_of(content)]

    assert "Amt '1,00': not an amount (digits, '.' and up to 5 decimals)" in reasons
    assert "CdtDbtInd 'CREDIT': expected CRDT or DBIT" in reasons
    assert "BookgDt '2025-02-30': not a date (YYYY-MM-DD or an ISO date-time)" in reasons
    assert "Amt/@Ccy 'NOKK': not an ISO 4217 currency" in reasons


def test_more_decimals_than_the_currency_has() -> None:
    content = camt054([FilePayment(100)]).replace(b">1.00</Amt>", b">1.005</Amt>")
    assert any("more decimals than NOK has (2)" in p for p in problems_of(content))


def test_truncated_garbage_and_other_xml() -> None:
    content = camt054(PAYMENTS)
    assert problems_of(content[: len(content) // 2])[0].startswith("line 3: not well-formed XML")
    with pytest.raises(BankFileError, match=r"not an ISO 20022 camt\.053 or camt\.054"):
        parse(b"<?xml version='1.0'?><Invoice/>")
    with pytest.raises(BankFileError, match=r"camt\.052"):
        parse(b"<Document><BkToCstmrAcctRpt/></Document>")


def test_wrong_encoding() -> None:
    latin1 = camt054([FilePayment(100, payer_name="Ærlig Ås")]).decode().encode("iso-8859-1")
    assert "not well-formed XML" in problems_of(latin1)[0]
    declared = latin1.replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"')
    assert parse(declared).payments[0].payer_name == "Ærlig Ås"
    utf16 = (
        camt054([FilePayment(100, payer_name="Ærlig Ås")])
        .decode()
        .replace('encoding="UTF-8"', 'encoding="UTF-16"')
        .encode("utf-16")
    )
    assert parse(utf16).payments[0].payer_name == "Ærlig Ås"


@pytest.mark.parametrize(
    "attack",
    [
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
        b"<Document><BkToCstmrDbtCdtNtfctn><GrpHdr><MsgId>&lol2;</MsgId></GrpHdr></BkToCstmrDbtCdtNtfctn></Document>",
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b"<Document><BkToCstmrStmt><GrpHdr><MsgId>&xxe;</MsgId></GrpHdr></BkToCstmrStmt></Document>",
        b'<?xml version="1.0"?><!DOCTYPE Document SYSTEM "http://example.invalid/camt.dtd">'
        b"<Document><BkToCstmrStmt/></Document>",
    ],
)
def test_dtds_and_entities_are_refused(attack: bytes) -> None:
    assert problems_of(attack) == [
        "a DOCTYPE or ENTITY declaration: not allowed in a bank file (XML entity attacks)"
    ]
