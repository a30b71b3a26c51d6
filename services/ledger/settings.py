"""The ledger's settings (FORDRING_ prefix, like every service)."""

from __future__ import annotations

from pydantic import Field, model_validator

from services.common.settings import CommonSettings


class LedgerSettings(CommonSettings):
    service_name: str = "ledger"
    mongo_database: str = "fordring_ledger"
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    http_port: int = Field(default=8081, ge=0, le=65535)
    # When set, the ledger makes sure a sandbox tenant with this API key exists (embedded stack, demos).
    sandbox_api_key: str = ""
    sandbox_tenant_name: str = "Sandbox AS"
    # How often the ledger looks for invoices that have passed their due date.
    overdue_sweep_seconds: float = Field(default=60.0, gt=0)
    # Consumer group the ledger reads matcher and dunning proposals with.
    consumer_group: str = "fordring-ledger"
    # WatchInvoice, per replica: open calls one tenant may hold, open calls in all, and how many versions
    # a watcher that reads slowly may fall behind before it skips to the newest.
    watch_max_per_tenant: int = Field(default=1000, ge=1)
    watch_max_total: int = Field(default=10_000, ge=1)
    watch_buffer: int = Field(default=8, ge=1)

    @model_validator(mode="after")
    def _no_sandbox_in_production(self) -> LedgerSettings:
        if self.sandbox_api_key and self.environment == "production":
            raise ValueError("sandbox_api_key must not be set when FORDRING_ENVIRONMENT=production")
        return self
