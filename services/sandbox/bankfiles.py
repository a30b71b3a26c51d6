"""Bank files of incoming payments, written as each bank writes them: Nets OCR Giro, ISO 20022
camt.054 / camt.053 (versions 02-08) and Bankgirot BgMax, from a list of `FilePayment`s. The sandbox
bank (services/sandbox/bank.py), the matcher's parser tests and the benchmarks build their files here.

    ocr_giro_file([FilePayment(125_000, reference="123456782")])
    camt054([FilePayment(125_000, reference="123456782", acct_svcr_ref="A1")], version="04")
    bgmax_file([FilePayment(9_900, reference="1234574", currency="SEK")])

Every builder takes `declared_*` overrides to make files whose declarations lie.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from xml.sax.saxutils import escape

from services.common.money import CURRENCY_EXPONENTS

# The day a builder writes when it is given none (the parser tests compare against it).
DAY = date(2025, 6, 20)
CREDITOR_ACCOUNT = "86011117947"
CREDITOR_IBAN = "NO9386011117947"
PAYEE_BANKGIRO = "9912346"
CAMT_VERSIONS = ("02", "03", "04", "05", "06", "07", "08")


@dataclass(frozen=True)
class FilePayment:
    """One payment to write into a file. Fields a format has no place for are ignored by its builder."""

    amount_minor: int
    reference: str = ""  # KID / OCR / RF
    free_text: str = ""
    payer_name: str = ""
    payer_account: str = ""  # BBAN or IBAN (camt), 11 digits (OCR Giro), bankgiro (BgMax)
    booking_date: date = DAY
    value_date: date | None = None  # None: the booking date
    currency: str = "NOK"
    debit: bool = False  # camt DBIT (a return when return_reason is set); OCR sign '-'; BgMax deduction (21)
    # camt
    acct_svcr_ref: str = ""  # TxDtls/Refs/AcctSvcrRef
    end_to_end_id: str = ""
    tx_id: str = ""
    entry: int | None = None  # payments with the same number share one Ntry (a batch)
    entry_ref: str = ""  # that Ntry's AcctSvcrRef
    return_reason: str = ""  # RtrInf/Rsn/Cd
    returned_end_to_end_id: str = ""
    extra_references: tuple[str, ...] = ()  # camt: more Strd; BgMax: records 22
    # OCR Giro
    archive_reference: str = ""  # default: derived from the transmission and the payment's place
    form_number: str = ""
    transaction_type: str = "10"
    # BgMax
    bgc_number: str = ""  # default: derived from the payment's place
    reference_code: str = ""  # default: 2 with a reference, 1 without


# --- Nets OCR Giro --------------------------------------------------------------------------------


def ocr_giro_file(
    payments: Sequence[FilePayment],
    *,
    transmission_number: str = "1000001",
    assignment_number: str | None = None,
    account: str = CREDITOR_ACCOUNT,
    agreement_id: str = "000123456",
    service_code: str = "09",
    data_transmitter: str = "00008080",
    data_recipient: str = "00123456",
    nets_date: date = DAY,
    declared_count: int | None = None,
    declared_total: int | None = None,
    declared_records: int | None = None,
    line_end: str = "\n",
) -> bytes:
    """One transmission with one assignment of `payments` (service code 09, or 21 for AvtaleGiro)."""
    number = assignment_number or transmission_number
    body: list[str] = []
    total = 0
    for index, p in enumerate(payments, 1):
        txn = f"{index:07d}"
        sign = "-" if p.debit else "0"
        total += -p.amount_minor if p.debit else p.amount_minor
        day = f"{p.booking_date:%d%m%y}"
        if service_code == "09":
            body.append(
                f"NY09{p.transaction_type}30{txn}{day}0115101464{sign}{p.amount_minor:017d}{p.reference:>25}000000"
            )
            archive = p.archive_reference or f"{transmission_number[-4:]}{index:05d}"
            form = p.form_number or f"{index:010d}"
            paid = f"{p.value_date:%d%m%y}" if p.value_date else "000000"
            debit_account = p.payer_account or "0" * 11
            body.append(
                f"NY09{p.transaction_type}31{txn}{form:>10}{archive:>9}0000000{paid}{debit_account:>11}"
                + "0" * 22
            )
            if p.free_text:
                body.append(f"NY09{p.transaction_type}32{txn}{p.free_text:<40}{'0' * 25}")
        else:
            body.append(
                f"NY21{p.transaction_type}30{txn}{day}{' ' * 11}{p.amount_minor:017d}{p.reference:>25}000000"
            )
            body.append(
                f"NY21{p.transaction_type}31{txn}{p.payer_name[:10]:<10}{' ' * 25}{p.free_text[:25]:<25}00000"
            )
    dates = [p.booking_date for p in payments] or [nets_date]
    count = declared_count if declared_count is not None else len(payments)
    amount = declared_total if declared_total is not None else abs(total)
    assignment = [
        f"NY{service_code}0020{agreement_id}{number}{account}{'0' * 45}",
        *body,
        f"NY{service_code}0088{count:08d}{len(body) + 2:08d}{amount:017d}"
        f"{nets_date:%d%m%y}{min(dates):%d%m%y}{max(dates):%d%m%y}{'0' * 21}",
    ]
    records = declared_records if declared_records is not None else len(assignment) + 2
    lines = [
        f"NY000010{data_transmitter}{transmission_number}{data_recipient}{'0' * 49}",
        *assignment,
        f"NY000089{count:08d}{records:08d}{amount:017d}{nets_date:%d%m%y}{'0' * 33}",
    ]
    return (line_end.join(lines) + line_end).encode("iso-8859-1")


# --- ISO 20022 camt.054 / camt.053 ----------------------------------------------------------------


def camt054(
    payments: Sequence[FilePayment],
    version: str = "08",
    *,
    msg_id: str = "MSG-1",
    account: str = CREDITOR_IBAN,
    currency: str = "NOK",
    declared_entries: int | None = None,
    declared_sum: str | None = None,
    batch_count: int | None = None,
    created: date = DAY,
) -> bytes:
    """A debit/credit notification: one Ntry per payment, or one per `FilePayment.entry` number."""
    return _camt(
        "054",
        payments,
        version,
        msg_id,
        account,
        currency,
        declared_entries,
        declared_sum,
        batch_count,
        created,
    )


def camt053(
    payments: Sequence[FilePayment],
    version: str = "08",
    *,
    msg_id: str = "STMT-1",
    account: str = CREDITOR_IBAN,
    currency: str = "NOK",
    declared_entries: int | None = None,
    declared_sum: str | None = None,
    batch_count: int | None = None,
    created: date = DAY,
) -> bytes:
    """A statement of the same entries (with opening and closing balances)."""
    return _camt(
        "053",
        payments,
        version,
        msg_id,
        account,
        currency,
        declared_entries,
        declared_sum,
        batch_count,
        created,
    )


def amount_text(minor: int, currency: str) -> str:
    exponent = CURRENCY_EXPONENTS[currency]
    return str(Decimal(minor).scaleb(-exponent)) if exponent else str(minor)


def _camt(
    kind: str,
    payments: Sequence[FilePayment],
    version: str,
    msg_id: str,
    account: str,
    currency: str,
    declared_entries: int | None,
    declared_sum: str | None,
    batch_count: int | None,
    created: date,
) -> bytes:
    v = int(version)
    entries: list[list[FilePayment]] = []
    by_number: dict[int, list[FilePayment]] = {}
    for p in payments:
        if p.entry is None:
            entries.append([p])
        elif p.entry in by_number:
            by_number[p.entry].append(p)
        else:
            by_number[p.entry] = [p]
            entries.append(by_number[p.entry])
    xml_entries: list[str] = []
    gross = net = Decimal(0)
    credits: list[Decimal] = []
    debits: list[Decimal] = []
    for index, group in enumerate(entries, 1):
        signed = sum((-p.amount_minor if p.debit else p.amount_minor) for p in group)
        entry_debit = signed < 0
        value = Decimal(amount_text(abs(signed), currency))
        gross += value
        net += -value if entry_debit else value
        (debits if entry_debit else credits).append(value)
        xml_entries.append(_entry(group, index, v, currency, entry_debit, abs(signed), batch_count))
    summary = _summary(v, len(entries), gross, net, credits, debits, declared_entries, declared_sum)
    account_xml = (
        f"<Id><IBAN>{account}</IBAN></Id>"
        if account[:2].isalpha()
        else f"<Id><Othr><Id>{account}</Id></Othr></Id>"
    )
    stamp = f"{created.isoformat()}T06:00:00+02:00"
    head = f"<GrpHdr><MsgId>{escape(msg_id)}</MsgId><CreDtTm>{stamp}</CreDtTm></GrpHdr>"
    if kind == "054":
        message, report = "BkToCstmrDbtCdtNtfctn", "Ntfctn"
        balances = ""
    else:
        message, report = "BkToCstmrStmt", "Stmt"
        closing = (
            f'<Amt Ccy="{currency}">{abs(net)}</Amt><CdtDbtInd>{"DBIT" if net < 0 else "CRDT"}</CdtDbtInd>'
        )
        balances = (
            f'<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="{currency}">0</Amt>'
            f"<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>{created.isoformat()}</Dt></Dt></Bal>"
            f"<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp>{closing}<Dt><Dt>{created.isoformat()}</Dt></Dt></Bal>"
        )
    body = (
        f"<{report}><Id>{escape(msg_id)}-1</Id><CreDtTm>{stamp}</CreDtTm>"
        f"<Acct>{account_xml}<Ccy>{currency}</Ccy></Acct>{balances}{summary}{''.join(xml_entries)}</{report}>"
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.{kind}.001.{version}">\n'
        f"<{message}>{head}{body}</{message}>\n</Document>\n"
    ).encode()


def _summary(
    v: int,
    count: int,
    gross: Decimal,
    net: Decimal,
    credits: list[Decimal],
    debits: list[Decimal],
    declared_entries: int | None,
    declared_sum: str | None,
) -> str:
    indicator = "DBIT" if net < 0 else "CRDT"
    if v >= 4:
        net_xml = f"<TtlNetNtry><Amt>{abs(net)}</Amt><CdtDbtInd>{indicator}</CdtDbtInd></TtlNetNtry>"
    else:
        net_xml = f"<TtlNetNtryAmt>{abs(net)}</TtlNetNtryAmt><CdtDbtInd>{indicator}</CdtDbtInd>"
    entries = declared_entries if declared_entries is not None else count
    total = declared_sum if declared_sum is not None else str(gross)
    return (
        f"<TxsSummry><TtlNtries><NbOfNtries>{entries}</NbOfNtries><Sum>{total}</Sum>{net_xml}</TtlNtries>"
        f"<TtlCdtNtries><NbOfNtries>{len(credits)}</NbOfNtries>"
        f"<Sum>{sum(credits, Decimal(0))}</Sum></TtlCdtNtries>"
        f"<TtlDbtNtries><NbOfNtries>{len(debits)}</NbOfNtries>"
        f"<Sum>{sum(debits, Decimal(0))}</Sum></TtlDbtNtries>"
        "</TxsSummry>"
    )


def _entry(
    group: list[FilePayment],
    index: int,
    v: int,
    currency: str,
    debit: bool,
    minor: int,
    batch_count: int | None,
) -> str:
    first = group[0]
    status = "<Sts><Cd>BOOK</Cd></Sts>" if v >= 8 else "<Sts>BOOK</Sts>"
    value_date = first.value_date or first.booking_date
    ref = f"<AcctSvcrRef>{escape(first.entry_ref)}</AcctSvcrRef>" if first.entry_ref else ""
    batch = ""
    if len(group) > 1 or batch_count is not None:
        batch = f"<Btch><NbOfTxs>{batch_count if batch_count is not None else len(group)}</NbOfTxs></Btch>"
    details = "".join(_details(p, v, currency) for p in group)
    return (
        f'<Ntry><NtryRef>{index}</NtryRef><Amt Ccy="{currency}">{amount_text(minor, currency)}</Amt>'
        f"<CdtDbtInd>{'DBIT' if debit else 'CRDT'}</CdtDbtInd>{status}"
        f"<BookgDt><Dt>{first.booking_date.isoformat()}</Dt></BookgDt><ValDt><Dt>{value_date.isoformat()}</Dt></ValDt>"
        f"{ref}<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>VCOM</SubFmlyCd></Fmly></Domn></BkTxCd>"
        f"<NtryDtls>{batch}{details}</NtryDtls></Ntry>"
    )


def _details(p: FilePayment, v: int, currency: str) -> str:
    refs = "".join(
        f"<{name}>{escape(value)}</{name}>"
        for name, value in (
            ("AcctSvcrRef", p.acct_svcr_ref),
            ("EndToEndId", p.end_to_end_id or "NOTPROVIDED"),
            ("TxId", p.tx_id),
        )
        if value
    )
    amount = f'<Amt Ccy="{p.currency}">{amount_text(p.amount_minor, p.currency)}</Amt>'
    indicator = f"<CdtDbtInd>{'DBIT' if p.debit else 'CRDT'}</CdtDbtInd>"
    money = f"{amount}{indicator}" if v >= 4 else f"<AmtDtls><TxAmt>{amount}</TxAmt></AmtDtls>"
    parties = ""
    if p.payer_name or p.payer_account:
        name = ""
        if p.payer_name:
            name = (
                f"<Pty><Nm>{escape(p.payer_name)}</Nm></Pty>"
                if v >= 8
                else f"<Nm>{escape(p.payer_name)}</Nm>"
            )
        account = ""
        if p.payer_account:
            inner = (
                f"<IBAN>{p.payer_account}</IBAN>"
                if p.payer_account[:2].isalpha()
                else f"<Othr><Id>{p.payer_account}</Id></Othr>"
            )
            account = f"<DbtrAcct><Id>{inner}</Id></DbtrAcct>"
        parties = f"<RltdPties>{f'<Dbtr>{name}</Dbtr>' if name else ''}{account}</RltdPties>"
    remittance = ""
    strd = "".join(
        "<Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry></Tp>"
        f"<Ref>{escape(ref)}</Ref></CdtrRefInf></Strd>"
        for ref in ((p.reference,) if p.reference else ()) + p.extra_references
    )
    ustrd = f"<Ustrd>{escape(p.free_text)}</Ustrd>" if p.free_text else ""
    if strd or ustrd:
        remittance = f"<RmtInf>{ustrd}{strd}</RmtInf>"
    returned = ""
    if p.return_reason:
        returned = f"<RtrInf><Rsn><Cd>{escape(p.return_reason)}</Cd></Rsn></RtrInf>"
        if p.returned_end_to_end_id:
            returned = returned.replace(
                "</RtrInf>", f"<OrgnlEndToEndId>{p.returned_end_to_end_id}</OrgnlEndToEndId></RtrInf>"
            )
    return f"<TxDtls><Refs>{refs}</Refs>{money}{parties}{remittance}{returned}</TxDtls>"


# --- Bankgirot BgMax -----------------------------------------------------------------------------


def bgmax_file(
    payments: Sequence[FilePayment],
    *,
    payee_bankgiro: str = PAYEE_BANKGIRO,
    bank_account: str = "5841000001009823",
    timestamp: str = "20250620061500123456",
    test_mark: str = "P",
    declared_counts: tuple[int, int, int, int] | None = None,
    deposit_amounts: dict[int, int] | None = None,
) -> bytes:
    """One section (05 … 15) per payment date and currency, in the order they first appear."""
    sections: dict[tuple[date, str], list[FilePayment]] = {}
    for p in payments:
        sections.setdefault((p.booking_date, p.currency), []).append(p)
    lines = [f"01{'BGMAX':<20}01{timestamp}{test_mark}".ljust(80)]
    counts = [0, 0, 0, 0]
    place = 0
    for serial, ((day, currency), group) in enumerate(sections.items(), 1):
        lines.append(f"05{payee_bankgiro:0>10}{'':10}{currency}".ljust(80))
        total = 0
        for p in group:
            place += 1
            record = "21" if p.debit else "20"
            counts[1 if p.debit else 0] += 1
            total += -p.amount_minor if p.debit else p.amount_minor
            code = p.reference_code or ("2" if p.reference else "1")
            bgc = p.bgc_number or f"{timestamp[:6]}{place:06d}"
            reference = p.reference.rjust(25) if code == "2" else p.reference.ljust(25)
            lines.append(
                f"{record}{p.payer_account:0>10}{reference}{p.amount_minor:018d}{code}1{bgc:>12}0"
                + ("0" if p.debit else "")
            )
            for extra in p.extra_references:
                counts[2] += 1
                lines.append(f"22{p.payer_account:0>10}{extra:>25}{0:018d}21{bgc:>12}0")
            if p.free_text:
                lines.append(f"25{p.free_text:<50}")
            if p.payer_name:
                lines.append(f"26{p.payer_name:<35}")
        counts[3] += 1
        amount = (deposit_amounts or {}).get(serial, total)
        lines.append(f"15{bank_account:0>35}{day:%Y%m%d}{serial:05d}{amount:018d}{currency}{len(group):08d} ")
    declared = declared_counts or tuple(counts)
    lines.append("70" + "".join(f"{n:08d}" for n in declared))
    return "".join(line.ljust(80) + "\n" for line in lines).encode("iso-8859-1")


__all__ = [
    "CAMT_VERSIONS",
    "CREDITOR_ACCOUNT",
    "CREDITOR_IBAN",
    "DAY",
    "PAYEE_BANKGIRO",
    "FilePayment",
    "amount_text",
    "bgmax_file",
    "camt053",
    "camt054",
    "ocr_giro_file",
]
