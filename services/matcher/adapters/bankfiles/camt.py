"""ISO 20022 camt.054 (debit/credit notification) and camt.053 (statement), versions 02-08.

Elements are found by local name ("{*}Ntry"), whatever namespace or version the file declares, and
both spellings of the parts that moved between versions are read:

    TxDtls amount          Amt (v04+), AmtDtls/TxAmt/Amt (v02, v03), else the entry's Amt when the
                           entry holds exactly one TxDtls
    debtor name            RltdPties/Dbtr/Nm (v02-v07), RltdPties/Dbtr/Pty/Nm (v08+)
    structured reference   RmtInf/Strd/CdtrRefInf/Ref (any type: SCOR, KID …), or CdtrRef
    entry status           Sts (v02-v07), Sts/Cd (v08+)
    net total              TxsSummry/TtlNetNtry/Amt (v04+), TxsSummry/TtlNetNtryAmt (v02, v03)

Each TxDtls is one payment (an entry may batch many); an entry without TxDtls is one payment. Only
booked entries (status BOOK) are payments: pending and information entries are booked later, in a
later file, with the same references. Debit entries are kept as debits: with RtrInf (or a reversal
indicator) they return an earlier payment; without it they are the account's other outgoing money.

Checked against what the file declares: TxsSummry (entries, their sum, credits, debits, net), each
batch's NbOfTxs and TtlAmt, and that an entry's transactions add up to the entry.

bank_key, the same in a camt.054 and in the day's camt.053 when the bank gives the same references:
    "camt:<account>:<TxDtls AcctSvcrRef>"                      the bank's own reference of the transaction
    "camt:<account>:<entry AcctSvcrRef>"                        entry with one transaction, no own reference
    "camt:<account>:<entry AcctSvcrRef>/<n>"                    the n-th transaction of a batch entry
    "camt:<account>:e2e:<EndToEndId>:<amount>:<booking date>"   no AcctSvcrRef at all
    "camt:<account>:tx:<TxId>:<amount>:<booking date>"          nor an EndToEndId
    "camt:<account>:msg:<MsgId>:<entry>:<n>"                    nothing: only a repeat of this file is seen
<account> is the account's IBAN, or for a Norwegian IBAN its 11-digit BBAN (the form Othr/Id gives), so
a statement naming the account one way and a notification the other still agree.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Literal

from lxml import etree

from services.common.money import CURRENCY_EXPONENTS
from services.matcher.adapters.bankfiles.common import Problems, unique_keys
from services.matcher.domain.payments import BankFile, BankPayment, FileFormat

_Element = etree._Element

MESSAGES: dict[str, tuple[FileFormat, str]] = {
    "BkToCstmrDbtCdtNtfctn": ("camt.054", "Ntfctn"),
    "BkToCstmrStmt": ("camt.053", "Stmt"),
}
NOT_PROVIDED = "NOTPROVIDED"
_VERSION = re.compile(r"camt\.05[34]\.001\.([0-9]{2})")
_AMOUNT = re.compile(r"[0-9]{1,18}(?:\.([0-9]{1,5}))?")
_DATE = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})(?:T[0-9:.]+(?:Z|[+-][0-9]{2}:[0-9]{2})?)?")
_DOCTYPE = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_BOOKED = "BOOK"
_STATUSES = frozenset({"BOOK", "PDNG", "INFO", "FUTR"})
_RETURNED_IDS = {
    "OrgnlBkTxId": "acct_svcr_ref",
    "OrgnlAcctSvcrRef": "acct_svcr_ref",
    "OrgnlEndToEndId": "end_to_end_id",
    "OrgnlTxId": "tx_id",
    "OrgnlInstrId": "instr_id",
}


def parse(content: bytes) -> BankFile:
    problems = Problems()
    root = _load(content, problems)
    return _Reader(root, problems).read()


def message_kind(root: _Element) -> tuple[FileFormat, _Element] | None:
    """The camt message element under the root (or the root itself) and the format it makes."""
    for element in (root, *root.iterchildren()):
        if isinstance(element.tag, str):
            found = MESSAGES.get(etree.QName(element).localname)
            if found is not None:
                return found[0], element
    return None


def _load(content: bytes, problems: Problems) -> _Element:
    if _DOCTYPE.search(content) is not None:
        problems.add("", "a DOCTYPE or ENTITY declaration: not allowed in a bank file (XML entity attacks)")
        problems.raise_if_any()
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        dtd_validation=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )
    try:
        root = etree.fromstring(content, parser)
    except etree.XMLSyntaxError as error:
        line = getattr(error, "lineno", 0)
        problems.add(f"line {line}" if line else "", f"not well-formed XML: {error.msg}")
        problems.raise_if_any()
        raise AssertionError from error  # pragma: no cover
    if root is None:  # pragma: no cover - lxml raises for an empty document
        problems.add("", "empty XML document")
        problems.raise_if_any()
    tree = root.getroottree()
    if tree.docinfo.internalDTD is not None or tree.docinfo.doctype:
        problems.add("", "a DOCTYPE declaration: not allowed in a bank file (XML entity attacks)")
    if any(True for _ in root.iter(etree.Entity)):
        problems.add("", "an entity reference: not allowed in a bank file")
    problems.raise_if_any()
    return root


def _local(element: _Element) -> str:
    return etree.QName(element).localname


def _text(element: _Element | None, path: str) -> str:
    if element is None:
        return ""
    return (element.findtext(path) or "").strip()


def _where(element: _Element) -> str:
    return f"line {element.sourceline}" if element.sourceline else ""


class _Reader:
    def __init__(self, root: _Element, problems: Problems) -> None:
        self.root = root
        self.problems = problems
        self.payments: list[BankPayment] = []

    def read(self) -> BankFile:
        found = message_kind(self.root)
        if found is None:
            name = _local(self.root)
            self.problems.add(
                _where(self.root),
                f"not a camt.053 or camt.054 message (root {name!r}; expected"
                " Document/BkToCstmrDbtCdtNtfctn or Document/BkToCstmrStmt)",
            )
            self.problems.raise_if_any()
            raise AssertionError  # pragma: no cover
        kind, message = found
        version_match = _VERSION.search(etree.QName(message).namespace or "")
        version = version_match.group(1) if version_match else ""
        self.msg_id = _text(message, "{*}GrpHdr/{*}MsgId")
        if not self.msg_id:
            self.problems.add(_where(message), "GrpHdr/MsgId missing: the message has no identity")
        created = _date(_text(message, "{*}GrpHdr/{*}CreDtTm"))
        report_name = MESSAGES[_local(message)][1]
        reports = message.findall("{*}" + report_name)
        if not reports:
            self.problems.add(_where(message), f"no {report_name} in the message")
        accounts: list[str] = []
        for number, report in enumerate(reports, 1):
            prefix = f"{report_name} {number} " if len(reports) > 1 else ""
            accounts.append(self._report(report, prefix))
        self.problems.raise_if_any()
        payments = unique_keys(self.payments)
        return BankFile(
            format=kind,
            version=version,
            file_id=f"{kind}:{self.msg_id}",
            creditor_account=",".join(dict.fromkeys(a for a in accounts if a)),
            payments=tuple(payments),
            declared_count=len(payments),
            declared_total_minor=sum(
                p.amount_minor if p.direction == "credit" else -p.amount_minor for p in payments
            ),
            created=created,
        )

    def _report(self, report: _Element, prefix: str) -> str:
        account = _text(report, "{*}Acct/{*}Id/{*}IBAN") or _text(report, "{*}Acct/{*}Id/{*}Othr/{*}Id")
        if not account:
            self.problems.add(_where(report), f"{prefix}Acct/Id: the account is missing")
        self.account_key = _account_key(account)
        entries = report.findall("{*}Ntry")
        net = gross = credit_sum = debit_sum = Decimal(0)
        credits = debits = 0
        for number, entry in enumerate(entries, 1):
            signed = self._entry(entry, f"{prefix}Ntry {number}", number)
            if signed is None:
                continue
            gross += abs(signed)
            net += signed
            if signed >= 0:
                credits, credit_sum = credits + 1, credit_sum + signed
            else:
                debits, debit_sum = debits + 1, debit_sum - signed
        summary = report.find("{*}TxsSummry")
        if summary is not None and not self.problems:
            self._summary(
                summary, prefix, len(entries), gross, net, (credits, credit_sum), (debits, debit_sum)
            )
        return account

    def _summary(
        self,
        summary: _Element,
        prefix: str,
        count: int,
        gross: Decimal,
        net: Decimal,
        credits: tuple[int, Decimal],
        debits: tuple[int, Decimal],
    ) -> None:
        at = f"{prefix}TxsSummry ({_where(summary)})"
        for path, (found_count, found_sum) in (
            ("TtlNtries", (count, gross)),
            ("TtlCdtNtries", credits),
            ("TtlDbtNtries", debits),
        ):
            part = summary.find("{*}" + path)
            if part is None:
                continue
            declared_count = _text(part, "{*}NbOfNtries")
            if declared_count and declared_count != str(found_count):
                self.problems.add(
                    at, f"{path}/NbOfNtries declares {declared_count} entries, the file has {found_count}"
                )
            declared_sum = _text(part, "{*}Sum")
            if declared_sum and _decimal(declared_sum) != found_sum:
                self.problems.add(at, f"{path}/Sum declares {declared_sum}, the entries sum to {found_sum}")
        net_amount = _text(summary, "{*}TtlNetNtry/{*}Amt") or _text(summary, "{*}TtlNetNtryAmt")
        if net_amount:
            indicator = _text(summary, "{*}TtlNetNtry/{*}CdtDbtInd") or _text(
                summary, "{*}TtlNtries/{*}CdtDbtInd"
            )
            declared = _decimal(net_amount)
            if declared is not None and indicator == "DBIT":
                declared = -declared
            if declared != net:
                self.problems.add(
                    at, f"the net total declares {indicator} {net_amount}, the entries net {net}"
                )

    def _entry(self, entry: _Element, at: str, number: int) -> Decimal | None:
        """Reads one entry's payments; returns its signed amount (None when the entry is broken)."""
        where = f"{at} ({_where(entry)})"
        before = len(self.problems.items)
        amount_element = entry.find("{*}Amt")
        amount = _amount(amount_element, where, "Amt", self.problems)
        indicator = _text(entry, "{*}CdtDbtInd")
        if indicator not in ("CRDT", "DBIT"):
            self.problems.add(where, f"CdtDbtInd {indicator!r}: expected CRDT or DBIT")
        status = _text(entry, "{*}Sts/{*}Cd") or _text(entry, "{*}Sts")
        if status not in _STATUSES:
            self.problems.add(where, f"entry status {status!r}: expected BOOK, PDNG, INFO or FUTR")
        booking = _entry_date(entry, "BookgDt", where, self.problems)
        value = _entry_date(entry, "ValDt", where, self.problems)
        reversal = _text(entry, "{*}RvslInd").lower() in ("true", "1")
        entry_ref = _text(entry, "{*}AcctSvcrRef")
        details = entry.findall("{*}NtryDtls/{*}TxDtls")
        for batch in entry.findall("{*}NtryDtls/{*}Btch"):
            declared = _text(batch, "{*}NbOfTxs")
            holds = len(batch.getparent().findall("{*}TxDtls"))  # type: ignore[union-attr]
            if declared and holds and declared != str(holds):
                self.problems.add(
                    where, f"Btch/NbOfTxs declares {declared} transactions, the entry holds {holds}"
                )
        if amount is None or len(self.problems.items) != before:
            return None
        minor, currency, decimal_amount = amount
        entry_sign = 1 if indicator == "CRDT" else -1
        if status != _BOOKED:
            return decimal_amount * entry_sign
        context = _Entry(
            at=at,
            number=number,
            minor=minor,
            amount=decimal_amount,
            currency=currency,
            indicator=indicator,
            reversal=reversal,
            ref=entry_ref,
            booking=booking,
            value=value,
            count=len(details),
        )
        if not details:
            self._payment(entry, None, context, 0)
            return decimal_amount * entry_sign
        net = Decimal(0)
        comparable = True
        for index, detail in enumerate(details, 1):
            signed = self._payment(entry, detail, context, index)
            if signed is None or signed[1] != currency:
                comparable = False
            else:
                net += signed[0]
        if comparable and len(self.problems.items) == before and net != decimal_amount * entry_sign:
            self.problems.add(
                where,
                f"the transactions add up to {net} {currency}, the entry is {entry_sign * decimal_amount}",
            )
        return decimal_amount * entry_sign

    def _payment(
        self, entry: _Element, detail: _Element | None, ctx: _Entry, index: int
    ) -> tuple[Decimal, str] | None:
        node = detail if detail is not None else entry
        location = f"{ctx.at} TxDtls {index}" if detail is not None else ctx.at
        where = f"{location} ({_where(node)})"
        minor, currency = ctx.minor, ctx.currency
        decimal_amount: Decimal | None = None
        indicator = ctx.indicator
        if detail is not None:
            amount_element = detail.find("{*}Amt")
            if amount_element is None:
                amount_element = detail.find("{*}AmtDtls/{*}TxAmt/{*}Amt")
            if amount_element is not None:
                amount = _amount(amount_element, where, "Amt", self.problems)
                if amount is None:
                    return None
                minor, currency, decimal_amount = amount
            elif ctx.count != 1:
                self.problems.add(where, f"no amount, in an entry of {ctx.count} transactions")
                return None
            own = _text(detail, "{*}CdtDbtInd")
            if own:
                if own not in ("CRDT", "DBIT"):
                    self.problems.add(where, f"CdtDbtInd {own!r}: expected CRDT or DBIT")
                    return None
                indicator = own
        direction: Literal["credit", "debit"] = "credit" if indicator == "CRDT" else "debit"
        refs = {
            "acct_svcr_ref": _text(detail, "{*}Refs/{*}AcctSvcrRef"),
            "end_to_end_id": _text(detail, "{*}Refs/{*}EndToEndId"),
            "tx_id": _text(detail, "{*}Refs/{*}TxId"),
            "instr_id": _text(detail, "{*}Refs/{*}InstrId"),
            "pmt_inf_id": _text(detail, "{*}Refs/{*}PmtInfId"),
            "uetr": _text(detail, "{*}Refs/{*}UETR"),
        }
        if refs["end_to_end_id"].upper() == NOT_PROVIDED:
            refs["end_to_end_id"] = ""
        ids = {name: value for name, value in refs.items() if value}
        if ctx.ref:
            ids["entry_acct_svcr_ref"] = ctx.ref
            ids.setdefault("acct_svcr_ref", ctx.ref)
        structured: list[str] = []
        free: list[str] = []
        for remittance in node.findall("{*}RmtInf"):
            for strd in remittance.findall("{*}Strd"):
                ref = _text(strd, "{*}CdtrRefInf/{*}Ref") or _text(strd, "{*}CdtrRefInf/{*}CdtrRef")
                if ref:
                    structured.append(ref)
            free.extend(text for u in remittance.findall("{*}Ustrd") if (text := (u.text or "").strip()))
        if detail is None and not free and (additional := _text(entry, "{*}AddtlNtryInf")):
            free.append(additional)
        # One payment, several structured references (one per invoice): the first is the reference, the
        # others are kept as text, where matching looks for references written by the payer.
        free.extend(structured[1:])
        parties = detail.find("{*}RltdPties") if detail is not None else None
        payer_name = _text(parties, "{*}Dbtr/{*}Nm") or _text(parties, "{*}Dbtr/{*}Pty/{*}Nm")
        if not payer_name:
            payer_name = _text(parties, "{*}UltmtDbtr/{*}Nm") or _text(parties, "{*}UltmtDbtr/{*}Pty/{*}Nm")
        payer_account = _text(parties, "{*}DbtrAcct/{*}Id/{*}IBAN") or _text(
            parties, "{*}DbtrAcct/{*}Id/{*}Othr/{*}Id"
        )
        return_reason = ""
        returned: dict[str, str] = {}
        if direction == "debit":
            info = detail.find("{*}RtrInf") if detail is not None else None
            if info is not None:
                return_reason = _text(info, "{*}Rsn/{*}Cd") or _text(info, "{*}Rsn/{*}Prtry") or "returned"
                for element in info.iter():
                    key = _RETURNED_IDS.get(_local(element)) if isinstance(element.tag, str) else None
                    if key and (value := (element.text or "").strip()):
                        returned[key] = value
                # A return carries the returned payment's EndToEndId (pacs.004).
                if "end_to_end_id" in ids:
                    returned.setdefault("end_to_end_id", ids["end_to_end_id"])
            elif ctx.reversal:
                return_reason = "reversal"
        self.payments.append(
            BankPayment(
                location=location,
                bank_key=self._bank_key(ids, refs, ctx, index, minor),
                direction=direction,
                amount_minor=minor,
                currency=currency,
                reference=structured[0] if structured else "",
                free_text=" / ".join(free),
                payer_name=payer_name,
                payer_account=payer_account,
                booking_date=ctx.booking,
                value_date=ctx.value,
                bank_ids=ids,
                return_reason=return_reason,
                returned_ids=returned,
            )
        )
        if decimal_amount is None:  # the entry's own amount (its only transaction has none)
            decimal_amount = ctx.amount
        return (decimal_amount if direction == "credit" else -decimal_amount), currency

    def _bank_key(
        self, ids: dict[str, str], refs: dict[str, str], ctx: _Entry, index: int, minor: int
    ) -> str:
        base = f"camt:{self.account_key}:"
        if refs["acct_svcr_ref"]:
            return base + refs["acct_svcr_ref"]
        if ctx.ref:
            return base + ctx.ref + (f"/{index}" if ctx.count > 1 else "")
        day = ctx.booking.isoformat() if ctx.booking else ""
        if refs["end_to_end_id"]:
            return f"{base}e2e:{refs['end_to_end_id']}:{minor}:{day}"
        if ids.get("tx_id"):
            return f"{base}tx:{ids['tx_id']}:{minor}:{day}"
        return f"{base}msg:{self.msg_id}:{ctx.number}:{index}"


class _Entry:
    __slots__ = (
        "amount", "at", "booking", "count", "currency", "indicator", "minor", "number", "ref", "reversal",
        "value",
    )  # fmt: skip

    def __init__(
        self,
        *,
        at: str,
        number: int,
        minor: int,
        amount: Decimal,
        currency: str,
        indicator: str,
        reversal: bool,
        ref: str,
        booking: date | None,
        value: date | None,
        count: int,
    ) -> None:
        self.at, self.number, self.minor, self.amount, self.currency = at, number, minor, amount, currency
        self.indicator, self.reversal, self.ref = indicator, reversal, ref
        self.booking, self.value, self.count = booking, value, count


def _amount(
    element: _Element | None, where: str, name: str, problems: Problems
) -> tuple[int, str, Decimal] | None:
    """(minor units, currency, the amount as written) of an amount element with its Ccy attribute."""
    if element is None:
        problems.add(where, f"{name} missing")
        return None
    text = (element.text or "").strip()
    currency = element.get("Ccy", "")
    found = _AMOUNT.fullmatch(text)
    if found is None:
        problems.add(where, f"{name} {text!r}: not an amount (digits, '.' and up to 5 decimals)")
        return None
    exponent = CURRENCY_EXPONENTS.get(currency)
    if exponent is None:
        problems.add(where, f"{name}/@Ccy {currency!r}: not an ISO 4217 currency")
        return None
    decimals = len(found.group(1) or "")
    value = Decimal(text)
    if decimals > exponent and value.scaleb(exponent) != value.scaleb(exponent).to_integral_value():
        problems.add(where, f"{name} {text} {currency}: more decimals than {currency} has ({exponent})")
        return None
    return int(value.scaleb(exponent)), currency, value


def _decimal(text: str) -> Decimal | None:
    return Decimal(text) if _AMOUNT.fullmatch(text) else None


def _date(text: str) -> date | None:
    found = _DATE.fullmatch(text)
    if found is None:
        return None
    try:
        return date.fromisoformat(found.group(1))
    except ValueError:
        return None


def _entry_date(entry: _Element, name: str, where: str, problems: Problems) -> date | None:
    element = entry.find("{*}" + name)
    if element is None:
        return None
    text = _text(element, "{*}Dt") or _text(element, "{*}DtTm")
    parsed = _date(text)
    if parsed is None:
        problems.add(where, f"{name} {text!r}: not a date (YYYY-MM-DD or an ISO date-time)")
    return parsed


def _account_key(account: str) -> str:
    """A Norwegian IBAN (NOkk + 11-digit BBAN) as its BBAN; any other account as given, without spaces."""
    compact = account.replace(" ", "").upper()
    if len(compact) == 15 and compact.startswith("NO") and compact[2:].isdigit():
        return compact[4:]
    return compact
