"""The sandbox providers' settings (FORDRING_SANDBOX_ prefix)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SandboxSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FORDRING_SANDBOX_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    # The providers' HTTP APIs (SMS, Peppol access point and registry, eFaktura, Vipps) and /control.
    http_port: int = Field(default=8099, ge=0, le=65535)
    # The SMTP server that keeps every mail as an .eml file.
    smtp_port: int = Field(default=2525, ge=0, le=65535)
    # Where every channel keeps what it received: <root>/<channel>/.
    root: Path = Path(".fordring/sandbox")
    # The print house's drop and Nets' AvtaleGiro directory, shared with the dispatcher's adapters.
    print_drop: Path = Path(".fordring/sandbox/print-drop")
    nets_dir: Path = Path(".fordring/sandbox/nets")
    # The dispatcher's public URL: receipts are posted to <url>/webhooks/<provider>.
    webhook_url: str = ""
    # One HMAC secret per provider, "provider=secret,provider=secret" (the dispatcher holds the same).
    webhook_secrets: str = Field(default="", repr=False)
    # The simulated customer follows the link in a delivered e-mail or SMS after this many seconds
    # (0: never), unless told otherwise per send (fault "unopened").
    open_after: float = Field(default=2.0, ge=0)
    # The stack's sandbox clock (services/common/sandbox_clock.py): with the MongoDB server that keeps
    # it, receipts are dated by the clock the services follow, not by the real time ("" = real time).
    clock_mongo_uri: str = Field(default="", repr=False)
    clock_database: str = "fordring_sandbox"
    log_level: str = "INFO"

    def secrets(self) -> dict[str, str]:
        pairs = (item.partition("=") for item in self.webhook_secrets.split(",") if item.strip())
        return {name.strip(): secret.strip() for name, _, secret in pairs}
