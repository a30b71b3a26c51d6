"""The dunning service's settings (FORDRING_ prefix, like every service)."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import CommonSettings


class DunningSettings(CommonSettings):
    service_name: str = "dunning"
    mongo_database: str = "fordring_dunning"
    grpc_port: int = Field(default=50055, ge=0, le=65535)
    http_port: int = Field(default=8086, ge=0, le=65535)
    ledger_target: str = "127.0.0.1:50051"
    consumer_group: str = "fordring-dunning"
    # Invoices decided per timer claim (each claim's steps are stored in one transaction).
    step_batch: int = Field(default=500, ge=1, le=5_000)
    # How long a replica holds the invoices it claimed before another may take them over.
    step_lease_seconds: float = Field(default=60.0, gt=0)
    # How often a step held without an end (a payment in review, a pause) is looked at again, besides
    # the moment its hold ends.
    held_recheck_seconds: float = Field(default=6 * 3600.0, gt=0)
    # After the ledger refused a proposal (the invoice changed), when to decide again.
    rejected_recheck_seconds: float = Field(default=60.0, gt=0)
    # Late-payment interest rates beyond the built-in tables (services/dunning/domain/interest.py):
    # comma-separated paths of rate-table JSON files (RateTable.to_json), each extending its
    # jurisdiction's table with the half-years the government has published since.
    rate_files: str = ""
    # Where the daily collection export files are written (empty: only served by GetCollectionExport).
    export_dir: str = ""
