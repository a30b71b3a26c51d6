"""The matcher's settings (FORDRING_ prefix, like every service)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from services.common.settings import CommonSettings


class MatcherSettings(CommonSettings):
    service_name: str = "matcher"
    mongo_database: str = "fordring_matcher"
    grpc_port: int = Field(default=50054, ge=0, le=65535)
    http_port: int = Field(default=8085, ge=0, le=65535)
    ledger_target: str = "127.0.0.1:50051"
    consumer_group: str = "fordring-matcher"
    # The largest bank file accepted (a 50,000-payment OCR Giro file is about 16 MB).
    max_file_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    # Payments decided and recorded per transaction (each with its events).
    import_batch: int = Field(default=1000, ge=1, le=10_000)
    # How long an import holds its tenant's import lease without renewing it (a crashed replica's
    # import is taken over after this).
    import_lease_seconds: float = Field(default=60.0, gt=0)
    # Before an import decides anything, how long it waits for the consumers to take in the invoice
    # and customer events the ledger had published when the file arrived.
    catch_up_seconds: float = Field(default=10.0, ge=0)
    # A file for an account the creditor's profile does not name (bank account, IBAN, bankgiro,
    # plusgiro): "refuse" it whole, import it with a "warn"ing on the import, or "off" (no check).
    # A creditor that receives on accounts its profile does not list needs warn or off.
    other_account: Literal["refuse", "warn", "off"] = "warn"
