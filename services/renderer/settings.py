"""The renderer's settings (FORDRING_ prefix, like every service)."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import CommonSettings


class RendererSettings(CommonSettings):
    service_name: str = "renderer"
    mongo_database: str = "fordring_renderer"
    grpc_port: int = Field(default=50052, ge=0, le=65535)
    http_port: int = Field(default=8082, ge=0, le=65535)
    # The ledger: invoices, customers and the tenant directory (creditor profiles, API keys).
    ledger_target: str = "127.0.0.1:50051"
    consumer_group: str = "fordring-renderer"
    # Where the invoice pages are (the portal): links on documents, e-mails and SMS.
    portal_url: str = "http://127.0.0.1:8090"
    # Signs the invoice page links (shared with the portal). Required in production.
    link_secret: str = Field(default="", repr=False)
    # Documents stay in the invoice hotel at least this long (eFaktura asks for 16 months).
    document_retention_days: int = Field(default=490, ge=487)
    # Check every EHF document against the Peppol rules before it is stored.
    validate_ehf: bool = True
    # Documents rendered at once (each in a worker thread).
    render_workers: int = Field(default=2, ge=1, le=32)
