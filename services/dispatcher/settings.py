"""The dispatcher's settings (FORDRING_ prefix, like every service; provider settings per channel)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from services.common.settings import CommonSettings

# Providers that post receipts to the public port (each with its own HMAC secret).
WEBHOOK_PROVIDERS = ("email", "sms", "peppol", "efaktura", "vipps", "print", "avtalegiro")


class DispatcherSettings(CommonSettings):
    service_name: str = "dispatcher"
    mongo_database: str = "fordring_dispatcher"
    grpc_port: int = Field(default=50053, ge=0, le=65535)
    http_port: int = Field(default=8083, ge=0, le=65535)
    # The public port: provider webhooks (POST /webhooks/<provider>) and the tracked invoice links
    # (GET /i/<token>) until the portal serves them. Behind an ingress in production.
    public_host: str = "0.0.0.0"  # noqa: S104 - a container listens on all interfaces
    public_port: int = Field(default=8084, ge=0, le=65535)
    # Where customers reach the public port: the invoice links in payment requests start with it.
    public_url: str = "http://127.0.0.1:8084"
    ledger_target: str = "127.0.0.1:50051"
    renderer_target: str = "127.0.0.1:50052"
    consumer_group: str = "fordring-dispatcher"
    # Checks the invoice links (shared with the renderer that prints them and the portal).
    link_secret: str = Field(default="", repr=False)
    # Sends at once (each a provider call); deliveries claimed per round.
    send_concurrency: int = Field(default=32, ge=1, le=512)
    send_batch: int = Field(default=128, ge=1, le=2000)
    # A provider error is retried with capped backoff this many times, then the delivery fails.
    max_attempts: int = Field(default=8, ge=1, le=50)
    retry_first_seconds: float = Field(default=30.0, gt=0)
    retry_cap_seconds: float = Field(default=3600.0, gt=0)
    # A claimed timer's lease, renewed while its batch is worked on: how long a crashed replica's
    # sends wait before another replica takes them.
    timer_lease_seconds: float = Field(default=30.0, gt=0)
    # Multiplies every rule's delay ("not opened in 3 days"): 1 in production; the embedded stack
    # makes days into seconds so the whole flow can be watched.
    delay_scale: float = Field(default=1.0, gt=0)
    # Print and AvtaleGiro: how often spooled letters and claims are closed into a batch or file.
    batch_every_seconds: float = Field(default=300.0, gt=0)
    # How long a registry's answer (EHF receiver, eFaktura recipient) is trusted.
    registry_cache_seconds: float = Field(default=3600.0, ge=0)

    # --- providers (the sandbox in the embedded stack) ---
    # One HMAC secret per provider for its webhooks: "email=…,sms=…,peppol=…".
    webhook_secrets: str = Field(default="", repr=False)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=2525, ge=1, le=65535)
    smtp_username: str = ""
    smtp_password: str = Field(default="", repr=False)
    # "starttls": required; "tls": TLS from the first byte (port 465); "opportunistic": STARTTLS when
    # the server offers it (the sandbox offers none); "none": never. Production refuses the last two
    # when a password would be sent.
    smtp_security: Literal["starttls", "tls", "opportunistic", "none"] = "opportunistic"
    # The envelope sender (MAIL FROM) where bounces go; the From address when empty.
    smtp_bounce_address: str = ""
    smtp_connections: int = Field(default=8, ge=1, le=64)
    # From: when the creditor's profile has no e-mail address.
    email_sender: str = "faktura@fordring.invalid"
    sms_url: str = "http://127.0.0.1:8099"
    sms_api_key: str = Field(default="sandbox", repr=False)
    sms_sender: str = "Fordring"
    peppol_url: str = "http://127.0.0.1:8099"
    peppol_api_key: str = Field(default="sandbox", repr=False)
    efaktura_url: str = "http://127.0.0.1:8099"
    efaktura_api_key: str = Field(default="sandbox", repr=False)
    vipps_url: str = "http://127.0.0.1:8099"
    vipps_api_key: str = Field(default="sandbox", repr=False)
    vipps_subscription_key: str = Field(default="sandbox", repr=False)
    vipps_merchant_serial_number: str = "123456"
    print_drop: Path = Path(".fordring/sandbox/print-drop")
    nets_dir: Path = Path(".fordring/sandbox/nets")
    avtalegiro_data_transmitter: str = "12345678"
    avtalegiro_data_recipient: str = "00008080"
    provider_timeout: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _no_sandbox_in_production(self) -> DispatcherSettings:
        """Production refuses what only the sandbox accepts: a sandbox key or a provider on the
        sandbox's address would fail every delivery on that channel (and fall back) at run time."""
        if self.environment != "production":
            return self
        problems = []
        if not self.link_secret:
            problems.append("link_secret is required (invoice links must be signed)")
        missing = [p for p in WEBHOOK_PROVIDERS if not self.secrets().get(p)]
        if missing:
            problems.append(f"webhook_secrets has no secret for {', '.join(missing)}")
        for name in ("sms", "peppol", "efaktura", "vipps"):
            if getattr(self, f"{name}_api_key") == "sandbox":
                problems.append(f"{name}_api_key is the sandbox's")
            if "127.0.0.1:8099" in getattr(self, f"{name}_url"):
                problems.append(f"{name}_url is the local sandbox")
        if self.smtp_password and self.smtp_security in ("opportunistic", "none"):
            problems.append("smtp_security must be starttls or tls when a password is sent")
        if self.public_url.startswith("http://127.0.0.1"):
            problems.append("public_url must be where customers reach the public port")
        if problems:
            raise ValueError("in production: " + "; ".join(problems))
        return self

    def secrets(self) -> dict[str, str]:
        pairs = (item.partition("=") for item in self.webhook_secrets.split(",") if item.strip())
        return {name.strip(): secret.strip() for name, _, secret in pairs}
