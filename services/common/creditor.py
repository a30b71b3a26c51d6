"""The creditor's profile: who asks for the money and where to pay it, as every document shows it.

The ledger owns it (services/ledger/profiles.py keeps every version); other services read a version
through the tenant directory (services/common/directory.py). A version never changes once made: an
invoice names the version it was issued under, and its documents are rendered from that one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Company forms registered in Foretaksregisteret, which NO-R-002 wants stated on the invoice.
ENTERPRISE_REGISTER_FORMS = frozenset({"AS", "ASA", "NUF"})
MAX_LOGO_BYTES = 256 * 1024
LOGO_MEDIA_TYPES = frozenset({"image/png", "image/svg+xml"})


class PostalAddress(BaseModel):
    model_config = ConfigDict(frozen=True)

    lines: tuple[str, ...] = ()
    postal_code: str = ""
    city: str = ""
    country: str = ""


class CreditorProfile(BaseModel):
    """One version of a tenant's profile (validated by the ledger before it is stored)."""

    model_config = ConfigDict(frozen=True)

    legal_name: str
    org_number: str
    jurisdiction: Literal["NO", "SE"] = "NO"
    company_form: str = ""
    vat_registered: bool = True
    address: PostalAddress = PostalAddress()
    # Norwegian account number (11 digits), IBAN/BIC, Swedish bankgiro and plusgiro.
    bank_account: str = ""
    iban: str = ""
    bic: str = ""
    bankgiro: str = ""
    plusgiro: str = ""
    email: str = ""
    phone: str = ""
    website: str = ""
    logo: bytes = b""
    logo_media_type: str = ""
    accent_colour: str = "#1F4E79"
    footer: str = ""
    payment_terms_days: int = Field(default=14, ge=1, le=365)
    # EHF: attach the PDF to the UBL document.
    ehf_attach_pdf: bool = True
    # SE: "Godkänd för F-skatt" (SE-R rules want it stated).
    f_tax_approved: bool = False
    version: int = 0

    @property
    def vat_id(self) -> str:
        """The seller's VAT identifier as invoices state it (NO-R-001: "NO" + org number + "MVA")."""
        if not self.vat_registered:
            return ""
        if self.jurisdiction == "SE":
            return f"SE{self.org_number}01"
        return f"NO{self.org_number}MVA"

    @property
    def in_enterprise_register(self) -> bool:
        return self.jurisdiction == "NO" and self.company_form.upper() in ENTERPRISE_REGISTER_FORMS
