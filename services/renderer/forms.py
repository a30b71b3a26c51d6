"""Every form of a document from one view: PDF, HTML page, EHF, e-mail (MIME), SMS.

The engines are made once per process and reused (a Typst compiler, a Peppol validator); a document
is rendered in a worker thread, so the event loop keeps serving calls meanwhile.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from email.policy import SMTP

from services.renderer.adapters.ehf import ORG_NUMBER_SCHEMES, EhfNotPossible, render_ehf
from services.renderer.adapters.html import render_email_html, render_page
from services.renderer.adapters.pdf import PdfRenderer
from services.renderer.adapters.peppol import PeppolValidator
from services.renderer.domain import messages
from services.renderer.domain.model import MESSAGE_KINDS, DocumentView, Form
from services.renderer.store import Rendered

log = logging.getLogger(__name__)

MEDIA_TYPES: dict[str, str] = {
    "pdf": "application/pdf",
    "html": "text/html; charset=utf-8",
    "ehf": "application/xml",
    "email": "message/rfc822",
    "sms": "text/plain; charset=utf-8",
}
_SUFFIX = {"pdf": "pdf", "html": "html", "ehf": "xml", "email": "eml", "sms": "txt"}


class InvalidEhf(Exception):
    """The EHF document breaks Peppol rules: it is not stored, and the findings go to the DLQ."""

    def __init__(self, findings: list[str]) -> None:
        super().__init__("; ".join(findings[:10]))
        self.findings = findings


@dataclass(frozen=True)
class Rendering:
    documents: tuple[Rendered, ...]
    # Why a form was left out although it was due (an EHF that breaks Peppol rules): a defect in the
    # invoice or the creditor's profile, sent to the dead-letter topic for an operator.
    refused: dict[str, str]
    # Why a form does not apply to this document (a buyer Peppol cannot address): nothing is wrong.
    skipped: dict[str, str] = field(default_factory=dict)


def forms_for(view: DocumentView) -> tuple[Form, ...]:
    """Which forms a document gets: EHF only for invoices and credit notes to a Norwegian or Swedish
    business with an organisation number (whom Peppol can address); SMS not for credit notes
    (nothing to pay); a nudge is only a message, an e-mail and an SMS (the link leads to the invoice)."""
    if view.kind in MESSAGE_KINDS:
        return ("email", "sms")
    forms: list[Form] = ["pdf", "html", "email"]
    if view.kind != "credit_note":
        forms.append("sms")
    buyer = view.buyer
    if (
        view.kind in ("invoice", "credit_note")
        and buyer.kind == "business"
        and buyer.org_number.strip()
        and buyer.address.country in ORG_NUMBER_SCHEMES
    ):
        forms.append("ehf")
    return tuple(forms)


def filename(view: DocumentView, form: str) -> str:
    stem = view.kind.replace("_", "-")
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in view.number)[:40]
    return f"{stem}-{safe}.{_SUFFIX[form]}"


class Forms:
    """The engines of one process."""

    def __init__(self, *, validate_ehf: bool = True) -> None:
        self._pdf = PdfRenderer()
        self._validator = PeppolValidator() if validate_ehf else None

    def render(self, view: DocumentView, forms: tuple[Form, ...], *, attach_pdf: bool) -> Rendering:
        out: list[Rendered] = []
        refused: dict[str, str] = {}
        skipped: dict[str, str] = {}
        pdf = self._pdf.render(view) if "pdf" in forms or ("ehf" in forms and attach_pdf) else b""
        for form in forms:
            if form == "pdf":
                content = pdf
            elif form == "html":
                content = render_page(view).encode()
            elif form == "sms":
                content = messages.sms_text(view).encode()
            elif form == "email":
                content = self.email(view)
            else:
                try:
                    content = self.ehf(view, pdf if attach_pdf else None)
                except EhfNotPossible as exc:
                    # Not a fault: the document goes by the other forms.
                    skipped[form] = str(exc)
                    continue
                except (InvalidEhf, ValueError) as exc:
                    refused[form] = str(exc)
                    continue
            out.append(Rendered(form, content, MEDIA_TYPES[form], filename(view, form)))
        return Rendering(tuple(out), refused, skipped)

    def one(self, view: DocumentView, form: Form) -> Rendered:
        """One form, for a preview (an invalid EHF raises InvalidEhf)."""
        if form == "ehf":
            content = self.ehf(view, None)
            return Rendered(form, content, MEDIA_TYPES[form], filename(view, form))
        rendering = self.render(view, (form,), attach_pdf=False)
        return rendering.documents[0]

    def ehf(self, view: DocumentView, pdf: bytes | None) -> bytes:
        xml = render_ehf(replace(view), pdf=pdf)
        if self._validator is not None:
            fatal = [f"{f.rule}: {f.text}" for f in self._validator.findings(xml) if f.fatal]
            if fatal:
                raise InvalidEhf(fatal)
        return xml

    @staticmethod
    def email(view: DocumentView) -> bytes:
        """Subject, plain text and HTML; the dispatcher adds the addresses and the PDF."""
        message = EmailMessage(policy=SMTP)
        message["Subject"] = messages.email_subject(view)
        message.set_content(messages.email_text(view))
        message.add_alternative(render_email_html(view), subtype="html")
        # After the content: set_content() clears the content headers it replaces.
        message["Content-Language"] = view.language
        return message.as_bytes()
