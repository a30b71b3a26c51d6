"""The sandbox tenant's creditor profile: a Norwegian AS as a real one would look (the embedded
stack and demos render their documents from it). Every identifier is valid but made up: the
organisation number is 999 999 999 (MOD11) and the account the standard example 8601.11.17947."""

from __future__ import annotations

from typing import Final

from services.common.creditor import ProfileInput

SANDBOX_ORG_NUMBER: Final = "999999999"

# Three fjord ridges over the water in a rounded square: drawn by hand, no text (no fonts needed).
SANDBOX_LOGO: Final = b"""<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" width="64" height="64">
  <rect x="2" y="2" width="60" height="60" rx="12" fill="#0B4F6C"/>
  <path d="M8 44 L22 22 L30 32 L40 16 L56 44 Z" fill="#F2F7F5"/>
  <path d="M8 44 L22 22 L26 28 L18 44 Z" fill="#C9DDD8"/>
  <path d="M8 48 Q16 44 24 48 T40 48 T56 48" fill="none" stroke="#7FC8A9" stroke-width="3"
        stroke-linecap="round"/>
  <path d="M12 54 Q20 50 28 54 T44 54 T52 54" fill="none" stroke="#7FC8A9" stroke-width="2"
        stroke-linecap="round"/>
</svg>
"""


def sandbox_profile(legal_name: str) -> ProfileInput:
    return ProfileInput(
        legal_name=legal_name,
        org_number=SANDBOX_ORG_NUMBER,
        jurisdiction="NO",
        company_form="AS",
        vat_registered=True,
        address_lines=("Fjordalléen 16",),
        postal_code="0250",
        city="Oslo",
        country="NO",
        bank_account="86011117947",
        iban="NO9386011117947",
        bic="DNBANOKKXXX",
        email="faktura@sandbox.fordring.example",
        phone="+4722123456",
        website="https://sandbox.fordring.example",
        logo=SANDBOX_LOGO,
        accent_colour="#0B4F6C",
        footer=f"{legal_name} er et testmiljø for Fordring: ingen krav herfra er ekte.",
        payment_terms_days=14,
        ehf_attach_pdf=True,
    )
