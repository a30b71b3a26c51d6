"""Every label and sentence a document shows, per language (nb, sv, en), keyed.

Every key exists in every language with the same placeholders (a unit test checks). The legal texts of
reminders and notices follow the creditor's law, not the reader's language: `legal.notice.NO` is the
Norwegian inkassovarsel whether it is written in Norwegian, Swedish or English.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from types import MappingProxyType

from services.renderer.domain.model import Language

LANGUAGES: tuple[Language, ...] = ("nb", "sv", "en")

_TEXTS: dict[str, dict[Language, str]] = {
    # Titles.
    "title.invoice": {"nb": "Faktura", "sv": "Faktura", "en": "Invoice"},
    "title.credit_note": {"nb": "Kreditnota", "sv": "Kreditfaktura", "en": "Credit note"},
    "title.nudge": {"nb": "Vennlig påminnelse", "sv": "Vänlig påminnelse", "en": "Friendly reminder"},
    "title.reminder": {"nb": "Purring", "sv": "Påminnelse", "en": "Payment reminder"},
    "title.reminder_repeat": {
        "nb": "{stage}. gangs purring",
        "sv": "Påminnelse {stage}",
        "en": "Payment reminder no. {stage}",
    },
    "title.collection_notice.NO": {
        "nb": "Inkassovarsel",
        "sv": "Inkassovarsel (varning om inkasso)",
        "en": "Debt collection notice",
    },
    "title.collection_notice.SE": {
        "nb": "Inkassokrav",
        "sv": "Inkassokrav",
        "en": "Debt collection demand",
    },
    # Document facts.
    "label.invoice_number": {"nb": "Fakturanummer", "sv": "Fakturanummer", "en": "Invoice number"},
    "label.credit_note_number": {
        "nb": "Kreditnotanummer",
        "sv": "Kreditfakturanummer",
        "en": "Credit note number",
    },
    "label.invoice_date": {"nb": "Fakturadato", "sv": "Fakturadatum", "en": "Invoice date"},
    "label.credit_note_date": {"nb": "Kreditnotadato", "sv": "Datum", "en": "Credit note date"},
    "label.notice_date": {"nb": "Dato", "sv": "Datum", "en": "Date"},
    "label.due_date": {"nb": "Forfallsdato", "sv": "Förfallodatum", "en": "Due date"},
    "label.deadline": {"nb": "Betal innen", "sv": "Betala senast", "en": "Pay by"},
    "label.customer_number": {"nb": "Kundenummer", "sv": "Kundnummer", "en": "Customer number"},
    "label.buyer_reference": {"nb": "Deres referanse", "sv": "Er referens", "en": "Your reference"},
    "label.order_reference": {"nb": "Ordrenummer", "sv": "Ordernummer", "en": "Order number"},
    "label.contract_reference": {"nb": "Kontrakt", "sv": "Avtal", "en": "Contract"},
    "label.org_number": {"nb": "Org.nr.", "sv": "Org.nr", "en": "Org. no."},
    "label.vat_number": {"nb": "MVA-nr.", "sv": "Momsreg.nr", "en": "VAT no."},
    "label.email": {"nb": "E-post", "sv": "E-post", "en": "E-mail"},
    "label.phone": {"nb": "Telefon", "sv": "Telefon", "en": "Phone"},
    "label.page": {"nb": "Side", "sv": "Sida", "en": "Page"},
    "label.continued": {"nb": "fortsettelse", "sv": "fortsättning", "en": "continued"},
    # Paying.
    "label.amount_to_pay": {"nb": "Å betale", "sv": "Att betala", "en": "Amount to pay"},
    "label.reference.NO": {"nb": "KID", "sv": "KID", "en": "KID number"},
    "label.reference.SE": {"nb": "OCR", "sv": "OCR", "en": "OCR reference"},
    "label.account": {"nb": "Kontonummer", "sv": "Kontonummer", "en": "Account number"},
    "label.bankgiro": {"nb": "Bankgiro", "sv": "Bankgiro", "en": "Bankgiro"},
    "label.plusgiro": {"nb": "PlusGiro", "sv": "PlusGiro", "en": "PlusGiro"},
    "label.iban": {"nb": "IBAN", "sv": "IBAN", "en": "IBAN"},
    "label.bic": {"nb": "BIC", "sv": "BIC", "en": "BIC"},
    "label.scan_to_pay": {"nb": "Skann for å betale", "sv": "Skanna för att betala", "en": "Scan to pay"},
    "label.scan_to_open": {
        "nb": "Skann for å åpne fakturaen",
        "sv": "Skanna för att öppna fakturan",
        "en": "Scan to open the invoice",
    },
    "label.pay_online": {
        "nb": "Se og betal på nett",
        "sv": "Se och betala online",
        "en": "View and pay online",
    },
    "label.view_online": {"nb": "Se dokumentet på nett", "sv": "Se dokumentet online", "en": "View online"},
    "text.use_reference": {
        "nb": "Husk KID ved betaling.",
        "sv": "Ange OCR-numret vid betalning.",
        "en": "Always quote the reference when you pay.",
    },
    # Lines.
    "col.line": {"nb": "Nr.", "sv": "Nr", "en": "No."},
    "col.description": {"nb": "Beskrivelse", "sv": "Beskrivning", "en": "Description"},
    "col.quantity": {"nb": "Antall", "sv": "Antal", "en": "Qty"},
    "col.unit": {"nb": "Enhet", "sv": "Enhet", "en": "Unit"},
    "col.unit_price": {"nb": "Pris", "sv": "À-pris", "en": "Unit price"},
    "col.vat_rate": {"nb": "MVA", "sv": "Moms", "en": "VAT"},
    "col.amount": {"nb": "Beløp", "sv": "Belopp", "en": "Amount"},
    "col.amount_in": {"nb": "Beløp ({currency})", "sv": "Belopp ({currency})", "en": "Amount ({currency})"},
    # Totals and VAT.
    "label.net_total": {"nb": "Sum eks. mva.", "sv": "Summa exkl. moms", "en": "Total excl. VAT"},
    "label.vat_at": {
        "nb": "Mva. {rate} av {base}",
        "sv": "Moms {rate} av {base}",
        "en": "VAT {rate} on {base}",
    },
    "label.vat_total": {"nb": "Sum mva.", "sv": "Summa moms", "en": "Total VAT"},
    "label.gross_total": {"nb": "Totalt inkl. mva.", "sv": "Totalt inkl. moms", "en": "Total incl. VAT"},
    "label.vat_breakdown": {"nb": "Merverdiavgift", "sv": "Mervärdesskatt", "en": "VAT breakdown"},
    "col.vat_base": {"nb": "Grunnlag", "sv": "Underlag", "en": "Taxable amount"},
    "col.vat_amount": {"nb": "Mva.", "sv": "Moms", "en": "VAT"},
    "col.vat_note": {"nb": "Merknad", "sv": "Anmärkning", "en": "Note"},
    "label.paid": {"nb": "Innbetalt", "sv": "Inbetalt", "en": "Paid"},
    "label.credited": {"nb": "Kreditert", "sv": "Krediterat", "en": "Credited"},
    "label.credit_total": {"nb": "Kreditert beløp", "sv": "Krediterat belopp", "en": "Amount credited"},
    "label.reason": {"nb": "Årsak", "sv": "Orsak", "en": "Reason"},
    "text.credits_invoice": {
        "nb": "Krediterer faktura {number} av {date}",
        "sv": "Krediterar faktura {number} daterad {date}",
        "en": "Credits invoice {number} dated {date}",
    },
    "text.credit_settlement": {
        "nb": "Beløpet trekkes fra det du skylder oss, eller betales tilbake til deg. Du skal ikke betale.",
        "sv": "Beloppet dras av från det du är skyldig oss eller betalas tillbaka. Du ska inte betala något.",
        "en": "The amount is set off against what you owe us or refunded to you. You need not pay anything.",
    },
    # Dunning: the claim and what was added to it, each apart.
    "label.claim": {"nb": "Kravet", "sv": "Fordran", "en": "The claim"},
    "label.original_invoice": {
        "nb": "Faktura {number} av {issue_date}, forfalt {due_date}",
        "sv": "Faktura {number} daterad {issue_date}, förföll {due_date}",
        "en": "Invoice {number} dated {issue_date}, due {due_date}",
    },
    "label.claim_outstanding": {
        "nb": "Utestående krav",
        "sv": "Kvarstående fordran",
        "en": "Outstanding claim",
    },
    "label.fees_and_interest": {
        "nb": "Gebyrer og renter (i tillegg til kravet)",
        "sv": "Avgifter och ränta (utöver fordran)",
        "en": "Fees and interest (in addition to the claim)",
    },
    "label.fee.NO": {"nb": "Purregebyr", "sv": "Påminnelseavgift", "en": "Reminder fee"},
    "label.fee.SE": {"nb": "Påminnelsesgebyr", "sv": "Påminnelseavgift", "en": "Reminder fee"},
    "label.interest.NO": {"nb": "Forsinkelsesrente", "sv": "Dröjsmålsränta", "en": "Late-payment interest"},
    "label.interest.SE": {"nb": "Forsinkelsesrente", "sv": "Dröjsmålsränta", "en": "Late-payment interest"},
    # The fixed B2B compensation: named by its law whatever the step was called.
    "label.compensation.NO": {
        "nb": "Standardkompensasjon (forsinkelsesrenteloven § 3a)",
        "sv": "Standardkompensasjon (norska forsinkelsesrenteloven § 3a)",
        "en": "Fixed compensation (Norwegian Late Payment Interest Act § 3a)",
    },
    "label.compensation.SE": {
        "nb": "Förseningsersättning (svensk fast kompensasjon)",
        "sv": "Förseningsersättning",
        "en": "Förseningsersättning (Swedish fixed compensation)",
    },
    # Interest accrued to the notice's date, stated whether or not it is charged yet.
    "label.interest_to_date": {
        "nb": "Påløpt forsinkelsesrente per {date}",
        "sv": "Upplupen dröjsmålsränta per {date}",
        "en": "Late-payment interest accrued to {date}",
    },
    "text.interest_to_date.included": {
        "nb": (
            "Påløpt forsinkelsesrente per {date} er {amount} og er tatt med i beløpet å betale. Renten "
            "løper til kravet er betalt."
        ),
        "sv": (
            "Upplupen dröjsmålsränta per {date} är {amount} och ingår i beloppet att betala. Räntan löper "
            "tills fordran är betald."
        ),
        "en": (
            "Late-payment interest accrued to {date} is {amount} and is included in the amount to pay. "
            "Interest runs until the claim is paid."
        ),
    },
    "text.interest_to_date.partly": {
        "nb": (
            "Påløpt forsinkelsesrente per {date} er {amount}, hvorav {charged} er tatt med i beløpet å "
            "betale; resten kommer i tillegg. Renten løper til kravet er betalt."
        ),
        "sv": (
            "Upplupen dröjsmålsränta per {date} är {amount}, varav {charged} ingår i beloppet att betala; "
            "resten tillkommer. Räntan löper tills fordran är betald."
        ),
        "en": (
            "Late-payment interest accrued to {date} is {amount}, of which {charged} is included in the "
            "amount to pay; the rest comes in addition. Interest runs until the claim is paid."
        ),
    },
    "text.interest_to_date.extra": {
        "nb": (
            "Påløpt forsinkelsesrente per {date} er {amount}. Den kommer i tillegg til beløpet å betale, "
            "og renten løper til kravet er betalt."
        ),
        "sv": (
            "Upplupen dröjsmålsränta per {date} är {amount}. Den tillkommer utöver beloppet att betala, "
            "och räntan löper tills fordran är betald."
        ),
        "en": (
            "Late-payment interest accrued to {date} is {amount}. It comes in addition to the amount to "
            "pay, and interest runs until the claim is paid."
        ),
    },
    "label.charge_added": {
        "nb": "{what}, lagt til {date}",
        "sv": "{what}, tillagd {date}",
        "en": "{what}, added {date}",
    },
    "label.fees_total": {"nb": "Sum gebyrer", "sv": "Summa avgifter", "en": "Total fees"},
    "label.interest_total": {"nb": "Sum renter", "sv": "Summa ränta", "en": "Total interest"},
    "label.total_due": {"nb": "Totalt å betale", "sv": "Totalt att betala", "en": "Total to pay"},
    # The law's words (DOMAIN.md). NO reminder: inkassoforskriften §1-2 (fee only when the reminder states
    # the amount and claim and gives at least 14 days); NO notice: inkassoloven §9; SE: lag (1981:739)
    # om ersättning för inkassokostnader, räntelagen, inkassolagen (1974:182) 5 §.
    "legal.reminder.NO": {
        "nb": (
            "Vi har ikke mottatt betaling for faktura {number}, som forfalt {due_date}. Vi ber deg betale "
            "{amount} innen {deadline}. Purregebyr (inkassoforskriften § 1-2) og forsinkelsesrente "
            "(forsinkelsesrenteloven) som er lagt til, står oppført for seg, atskilt fra kravet. "
            "Betalingen er i rett tid dersom betalingsoppdraget er mottatt av banken din innen fristen. "
            "Betales kravet ikke innen fristen, kan vi sende inkassovarsel, og det vil påløpe ytterligere "
            "kostnader. Har du betalt i mellomtiden, kan du se bort fra denne purringen. Er du uenig i "
            "kravet, ber vi deg kontakte oss før fristen."
        ),
        "sv": (
            "Vi har inte fått betalt för faktura {number}, som förföll {due_date}. Betala {amount} senast "
            "{deadline}. Påminnelseavgift och dröjsmålsränta som lagts till enligt norsk lag "
            "(inkassoforskriften § 1-2, forsinkelsesrenteloven) redovisas skilda från fordran. Betalningen "
            "har skett i tid om din bank har tagit emot betalningsuppdraget senast sista dagen. Betalas "
            "fordran inte i tid kan vi skicka ett inkassovarsel, och ytterligare kostnader tillkommer. Har "
            "du redan betalat kan du bortse från denna påminnelse. Har du invändningar mot kravet, "
            "kontakta oss före förfallodagen."
        ),
        "en": (
            "We have not received payment of invoice {number}, which fell due on {due_date}. Please pay "
            "{amount} by {deadline}. Any reminder fee (Norwegian Debt Collection Regulations § 1-2) and "
            "late-payment interest (Late Payment Interest Act) added are shown apart from the claim. The "
            "payment is on time if your bank has received the payment order by the deadline. If the claim "
            "is not paid by then, we may send a debt collection notice, and further costs will accrue. If "
            "you have paid in the meantime, please disregard this reminder. If you dispute the claim, "
            "contact us before the deadline."
        ),
    },
    "legal.reminder.SE": {
        "nb": (
            "Vi har ikke mottatt betaling for faktura {number}, som forfalt {due_date}. Vi ber deg betale "
            "{amount} innen {deadline}. Påminnelsesgebyr (lag (1981:739) om ersättning för "
            "inkassokostnader m.m.) og forsinkelsesrente (räntelagen) som er lagt til, står oppført for "
            "seg, atskilt fra kravet. Betales kravet ikke innen fristen, kan det bli sendt til inkasso, og "
            "det vil påløpe ytterligere kostnader. Har du betalt i mellomtiden, kan du se bort fra denne "
            "påminnelsen. Er du uenig i kravet, ber vi deg kontakte oss før fristen."
        ),
        "sv": (
            "Vi har inte fått betalt för faktura {number}, som förföll {due_date}. Betala {amount} senast "
            "{deadline}. Påminnelseavgift enligt lagen (1981:739) om ersättning för inkassokostnader m.m. "
            "och dröjsmålsränta enligt räntelagen som lagts till redovisas skilda från fordran. Betalas "
            "fordran inte i tid kan den lämnas till inkasso, och ytterligare kostnader tillkommer. Har du "
            "redan betalat kan du bortse från denna påminnelse. Har du invändningar mot kravet, kontakta "
            "oss före förfallodagen."
        ),
        "en": (
            "We have not received payment of invoice {number}, which fell due on {due_date}. Please pay "
            "{amount} by {deadline}. Any reminder fee (Swedish Act 1981:739 on Compensation for Debt "
            "Collection Costs) and late-payment interest (Swedish Interest Act) added are shown apart from "
            "the claim. If the claim is not paid by then, it may be passed to debt collection, and further "
            "costs will accrue. If you have paid in the meantime, please disregard this reminder. If you "
            "dispute the claim, contact us before the deadline."
        ),
    },
    "legal.notice.NO": {
        "nb": (
            "Inkassovarsel etter inkassoloven § 9. Vi har ikke mottatt betaling for faktura {number}, som "
            "forfalt {due_date}. Betal {amount} innen {deadline}, som er minst 14 dager etter at dette "
            "varselet ble sendt. Betales kravet ikke innen fristen, vil inndriving bli iverksatt, og "
            "inndrivingen vil medføre ytterligere kostnader for deg. Betalingen er i rett tid dersom "
            "betalingsoppdraget er mottatt av banken din innen fristen. Gebyr og renter står oppført for "
            "seg, atskilt fra kravet. Er du uenig i kravet, må du gi oss beskjed snarest og før fristen."
        ),
        "sv": (
            "Inkassovarsel enligt norska inkassoloven § 9. Vi har inte fått betalt för faktura {number}, "
            "som förföll {due_date}. Betala {amount} senast {deadline}, minst 14 dagar efter att detta "
            "varsel skickades. Betalas fordran inte i tid kommer den att drivas in, och indrivningen "
            "medför ytterligare kostnader för dig. Betalningen har skett i tid om din bank har tagit emot "
            "betalningsuppdraget senast sista dagen. Avgifter och ränta redovisas skilda från fordran. Har "
            "du invändningar mot kravet, meddela oss snarast och före förfallodagen."
        ),
        "en": (
            "Debt collection notice under section 9 of the Norwegian Debt Collection Act. We have not "
            "received payment of invoice {number}, which fell due on {due_date}. Pay {amount} by "
            "{deadline}, at least 14 days after this notice was sent. If the claim is not paid by then, "
            "debt collection will begin, and it will bring further costs for you. The payment is on time "
            "if your bank has received the payment order by the deadline. Fees and interest are shown "
            "apart from the claim. If you dispute the claim, tell us at once and before the deadline."
        ),
    },
    "legal.notice.SE": {
        "nb": (
            "Inkassokrav. Vi har ikke mottatt betaling for faktura {number}, som forfalt {due_date}. Betal "
            "{amount} innen {deadline}. Betales kravet ikke innen fristen, vil det bli sendt til inkasso "
            "eller til Kronofogdemyndigheten med søknad om betalingspålegg (betalningsföreläggande). Det "
            "medfører ytterligere kostnader for deg og kan gi en betalingsanmerkning. Gebyr og renter står "
            "oppført for seg, atskilt fra kravet. Er du uenig i kravet, må du gi oss beskjed snarest og "
            "før fristen."
        ),
        "sv": (
            "Inkassokrav. Vi har inte fått betalt för faktura {number}, som förföll {due_date}. Betala "
            "{amount} senast {deadline}. Betalas fordran inte i tid kommer den att lämnas till inkasso "
            "eller till Kronofogdemyndigheten med ansökan om betalningsföreläggande. Det medför "
            "ytterligare kostnader för dig och kan leda till en betalningsanmärkning. Avgifter och ränta "
            "redovisas skilda från fordran. Har du invändningar mot kravet ska du meddela oss det snarast "
            "och före förfallodagen."
        ),
        "en": (
            "Debt collection demand. We have not received payment of invoice {number}, which fell due on "
            "{due_date}. Pay {amount} by {deadline}. If the claim is not paid by then, it will be passed "
            "to debt collection or to the Swedish Enforcement Authority (Kronofogden) with an application "
            "for an order to pay. That will bring further costs for you and may lead to a payment default "
            "record. Fees and interest are shown apart from the claim. If you dispute the claim, tell us "
            "at once and before the deadline."
        ),
    },
    # Register statements the law wants printed as they are, in any language.
    "legal.enterprise_register": {
        "nb": "Foretaksregisteret",
        "sv": "Foretaksregisteret",
        "en": "Foretaksregisteret",
    },
    "legal.f_tax": {"nb": "Godkänd för F-skatt", "sv": "Godkänd för F-skatt", "en": "Godkänd för F-skatt"},
    # E-mail.
    "email.subject.invoice": {
        "nb": "Faktura {number} fra {seller}",
        "sv": "Faktura {number} från {seller}",
        "en": "Invoice {number} from {seller}",
    },
    "email.subject.credit_note": {
        "nb": "Kreditnota {number} fra {seller}",
        "sv": "Kreditfaktura {number} från {seller}",
        "en": "Credit note {number} from {seller}",
    },
    "email.subject.nudge": {
        "nb": "Vennlig påminnelse: faktura {number} fra {seller}",
        "sv": "Vänlig påminnelse: faktura {number} från {seller}",
        "en": "Friendly reminder: invoice {number} from {seller}",
    },
    "email.subject.reminder": {
        "nb": "Purring: faktura {number} fra {seller}",
        "sv": "Påminnelse: faktura {number} från {seller}",
        "en": "Payment reminder: invoice {number} from {seller}",
    },
    "email.subject.collection_notice": {
        "nb": "{title}: faktura {number} fra {seller}",
        "sv": "{title}: faktura {number} från {seller}",
        "en": "{title}: invoice {number} from {seller}",
    },
    "email.greeting": {"nb": "Hei {name},", "sv": "Hej {name},", "en": "Dear {name},"},
    "email.lead.invoice": {
        "nb": "Her er faktura {number} fra {seller}. Beløpet er {amount}, med forfall {due_date}.",
        "sv": "Här är faktura {number} från {seller}. Beloppet är {amount} och förfaller {due_date}.",
        "en": "Here is invoice {number} from {seller}. The amount is {amount}, due on {due_date}.",
    },
    "email.lead.credit_note": {
        "nb": "Her er kreditnota {number} fra {seller} på {amount}. Den krediterer faktura {credited}.",
        "sv": "Här är kreditfaktura {number} från {seller} på {amount}. Den krediterar faktura {credited}.",
        "en": "Here is credit note {number} from {seller} for {amount}. It credits invoice {credited}.",
    },
    # A nudge: friendly, no fee, no threat; the amount, the original due date and the link.
    "email.lead.nudge": {
        "nb": (
            "Vi ser at faktura {number} på {amount}, som forfalt {due_date}, ikke er betalt ennå. Kanskje "
            "har den blitt glemt? Du kan betale enkelt via lenken nedenfor. Har du allerede betalt, kan du "
            "se bort fra denne meldingen."
        ),
        "sv": (
            "Vi ser att faktura {number} på {amount}, som förföll {due_date}, inte är betald ännu. Den "
            "kanske har glömts bort? Du kan enkelt betala via länken nedan. Har du redan betalat kan du "
            "bortse från detta meddelande."
        ),
        "en": (
            "Invoice {number} for {amount}, due on {due_date}, has not been paid yet. Perhaps it slipped "
            "your mind? You can pay easily with the link below. If you have already paid, please "
            "disregard this message."
        ),
    },
    # The early nudge's offer to customers who paid late before (AvtaleGiro/eFaktura; SE: Autogiro).
    "email.offer.automatic_payment": {
        "nb": (
            "Vil du slippe å huske forfallsdatoer? Med AvtaleGiro eller eFaktura i nettbanken betales "
            "fakturaene våre automatisk på forfallsdagen. Du kan melde deg på i nettbanken din."
        ),
        "sv": (
            "Vill du slippa hålla reda på förfallodagar? Med Autogiro eller e-faktura i internetbanken "
            "betalas våra fakturor automatiskt på förfallodagen. Anmäl dig i din internetbank."
        ),
        "en": (
            "Rather not keep track of due dates? With AvtaleGiro (Autogiro) or eFaktura in your online "
            "bank, our invoices are paid automatically on the due date. You can sign up in your online bank."
        ),
    },
    # A nudge sent on or before the due date (the dunning service's early nudge).
    "email.lead.nudge_early": {
        "nb": (
            "Faktura {number} på {amount} forfaller {due_date}. Du kan betale enkelt via lenken nedenfor. "
            "Har du allerede betalt, kan du se bort fra denne meldingen."
        ),
        "sv": (
            "Faktura {number} på {amount} förfaller {due_date}. Du kan enkelt betala via länken nedan. Har "
            "du redan betalat kan du bortse från detta meddelande."
        ),
        "en": (
            "Invoice {number} for {amount} falls due on {due_date}. You can pay easily with the link "
            "below. If you have already paid, please disregard this message."
        ),
    },
    "email.lead.reminder": {
        "nb": "Vi har ikke mottatt betaling for faktura {number}. Betal {amount} innen {due_date}.",
        "sv": "Vi har inte fått betalt för faktura {number}. Betala {amount} senast {due_date}.",
        "en": "We have not received payment of invoice {number}. Please pay {amount} by {due_date}.",
    },
    "email.lead.collection_notice": {
        "nb": (
            "Faktura {number} er fortsatt ubetalt. Betal {amount} innen {due_date}; ellers blir kravet "
            "sendt til inkasso, og det påløper ytterligere kostnader."
        ),
        "sv": (
            "Faktura {number} är fortfarande obetald. Betala {amount} senast {due_date}; annars lämnas "
            "fordran till inkasso och ytterligare kostnader tillkommer."
        ),
        "en": (
            "Invoice {number} is still unpaid. Pay {amount} by {due_date}; otherwise the claim goes to "
            "debt collection and further costs will accrue."
        ),
    },
    "email.attachment_note": {
        "nb": "Dokumentet er vedlagt som PDF.",
        "sv": "Dokumentet bifogas som PDF.",
        "en": "The document is attached as a PDF.",
    },
    "email.signature": {
        "nb": "Vennlig hilsen\n{seller}",
        "sv": "Vänliga hälsningar\n{seller}",
        "en": "Kind regards\n{seller}",
    },
    # SMS, longest first; messages.py takes the first that fits one GSM-7 message.
    "sms.invoice.long": {
        "nb": "Faktura {number} fra {seller}: {amount}, forfall {due_date}. KID {reference}. Betal: {link}",
        "sv": "Faktura {number} från {seller}: {amount}, förfaller {due_date}. OCR {reference}: {link}",
        "en": "Invoice {number} from {seller}: {amount}, due {due_date}. Ref {reference}. Pay: {link}",
    },
    "sms.invoice.short": {
        "nb": "{seller}: faktura {amount}, forfall {due_date}. Betal: {link}",
        "sv": "{seller}: faktura {amount}, förfaller {due_date}. Betala: {link}",
        "en": "{seller}: invoice {amount}, due {due_date}. Pay: {link}",
    },
    "sms.invoice.shortest": {
        "nb": "Faktura {amount}, forfall {due_date}: {link}",
        "sv": "Faktura {amount}, förf. {due_date}: {link}",
        "en": "Invoice {amount}, due {due_date}: {link}",
    },
    "sms.credit_note.long": {
        "nb": "Kreditnota {number} fra {seller}: {amount} kreditert på faktura {credited}. Se: {link}",
        "sv": "Kreditfaktura {number} från {seller}: {amount} krediterat på faktura {credited}. Se: {link}",
        "en": "Credit note {number} from {seller}: {amount} credited on invoice {credited}. See: {link}",
    },
    "sms.credit_note.short": {
        "nb": "{seller}: kreditnota {amount}. Se: {link}",
        "sv": "{seller}: kreditfaktura {amount}. Se: {link}",
        "en": "{seller}: credit note {amount}. See: {link}",
    },
    "sms.credit_note.shortest": {
        "nb": "Kreditnota {amount}: {link}",
        "sv": "Kreditfaktura {amount}: {link}",
        "en": "Credit note {amount}: {link}",
    },
    "sms.nudge.long": {
        "nb": "Hei! Faktura {number} fra {seller} på {amount} forfalt {due_date}. Glemt? Betal her: {link}",
        "sv": "Hej! Faktura {number} från {seller} på {amount} förföll {due_date}. Glömt? Betala: {link}",
        "en": "Hi! Invoice {number} from {seller} for {amount} was due {due_date}. Forgotten? Pay: {link}",
    },
    "sms.nudge.short": {
        "nb": "{seller}: vennlig påminnelse om {amount}, forfalt {due_date}. Betal: {link}",
        "sv": "{seller}: vänlig påminnelse om {amount}, förföll {due_date}. Betala: {link}",
        "en": "{seller}: a friendly reminder of {amount}, due {due_date}. Pay: {link}",
    },
    "sms.nudge.shortest": {
        "nb": "Påminnelse: {amount} forfalt {due_date}: {link}",
        "sv": "Påminnelse: {amount} förföll {due_date}: {link}",
        "en": "Reminder: {amount} due {due_date}: {link}",
    },
    "sms.nudge_early.long": {
        "nb": "Hei! Faktura {number} fra {seller} på {amount} forfaller {due_date}. Betal her: {link}",
        "sv": "Hej! Faktura {number} från {seller} på {amount} förfaller {due_date}. Betala: {link}",
        "en": "Hi! Invoice {number} from {seller} for {amount} is due {due_date}. Pay here: {link}",
    },
    "sms.nudge_early.short": {
        "nb": "{seller}: vennlig påminnelse om {amount}, forfall {due_date}. Betal: {link}",
        "sv": "{seller}: vänlig påminnelse om {amount}, förfaller {due_date}. Betala: {link}",
        "en": "{seller}: a friendly reminder of {amount}, due {due_date}. Pay: {link}",
    },
    "sms.nudge_early.shortest": {
        "nb": "Påminnelse: {amount} forfaller {due_date}: {link}",
        "sv": "Påminnelse: {amount} förfaller {due_date}: {link}",
        "en": "Reminder: {amount} due {due_date}: {link}",
    },
    "sms.reminder.long": {
        "nb": "Purring fra {seller}: faktura {number} er ubetalt. Betal {amount} innen {due_date}: {link}",
        "sv": "Påminnelse från {seller}: faktura {number} obetald. Betala {amount} senast {due_date}: {link}",
        "en": "Reminder from {seller}: invoice {number} is unpaid. Pay {amount} by {due_date}: {link}",
    },
    "sms.reminder.short": {
        "nb": "Purring {seller}: betal {amount} innen {due_date}: {link}",
        "sv": "Påminnelse {seller}: betala {amount} senast {due_date}: {link}",
        "en": "Reminder {seller}: pay {amount} by {due_date}: {link}",
    },
    "sms.reminder.shortest": {
        "nb": "Purring: betal {amount} innen {due_date}: {link}",
        "sv": "Påminnelse: betala {amount} senast {due_date}: {link}",
        "en": "Reminder: pay {amount} by {due_date}: {link}",
    },
    "sms.collection_notice.long": {
        "nb": "{title} fra {seller}: betal {amount} innen {due_date}, ellers går kravet til inkasso. {link}",
        "sv": "{title} från {seller}: betala {amount} senast {due_date}, annars går den till inkasso. {link}",
        "en": "{title} from {seller}: pay {amount} by {due_date} or the claim goes to collection. {link}",
    },
    "sms.collection_notice.short": {
        "nb": "{title}: betal {amount} innen {due_date}, ellers inkasso. {link}",
        "sv": "{title}: betala {amount} senast {due_date}, annars inkasso. {link}",
        "en": "{title}: pay {amount} by {due_date} or debt collection. {link}",
    },
    "sms.collection_notice.shortest": {
        "nb": "Inkasso varsles. Betal {amount} innen {due_date}: {link}",
        "sv": "Inkasso varnas. Betala {amount} senast {due_date}: {link}",
        "en": "Collection notice. Pay {amount} by {due_date}: {link}",
    },
    # UN/ECE Recommendation 20 units (the ones invoices here use); any other code is shown as it is.
    "unit.C62": {"nb": "stk", "sv": "st", "en": "pcs"},
    "unit.EA": {"nb": "stk", "sv": "st", "en": "pcs"},
    "unit.H87": {"nb": "stk", "sv": "st", "en": "pcs"},
    "unit.HUR": {"nb": "timer", "sv": "tim", "en": "hrs"},
    "unit.DAY": {"nb": "dager", "sv": "dagar", "en": "days"},
    "unit.WEE": {"nb": "uker", "sv": "veckor", "en": "weeks"},
    "unit.MON": {"nb": "mnd.", "sv": "mån", "en": "months"},
    "unit.ANN": {"nb": "år", "sv": "år", "en": "years"},
    "unit.KGM": {"nb": "kg", "sv": "kg", "en": "kg"},
    "unit.MTR": {"nb": "m", "sv": "m", "en": "m"},
    "unit.MTK": {"nb": "m²", "sv": "m²", "en": "m²"},
    "unit.LTR": {"nb": "l", "sv": "l", "en": "l"},
    "unit.KWH": {"nb": "kWh", "sv": "kWh", "en": "kWh"},
    "unit.KMT": {"nb": "km", "sv": "km", "en": "km"},
}

TEXTS: Mapping[str, Mapping[Language, str]] = MappingProxyType(
    {key: MappingProxyType(by_language) for key, by_language in _TEXTS.items()}
)


class MissingText(KeyError):
    """A text key that does not exist."""


def text(key: str, language: Language, **values: object) -> str:
    """The text for key in language, with its {placeholders} filled from values."""
    try:
        template = TEXTS[key][language]
    except KeyError:
        raise MissingText(f"no text {key!r} in language {language!r}") from None
    return template.format(**values) if values else template


def placeholders(template: str) -> frozenset[str]:
    """The names of a template's {placeholders}."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name)


def unit_name(unit_code: str, language: Language) -> str:
    """A UN/ECE unit code as a reader says it ("HUR" -> "timer"); an unknown code as it is."""
    by_language = TEXTS.get(f"unit.{unit_code}")
    return by_language[language] if by_language is not None else unit_code
