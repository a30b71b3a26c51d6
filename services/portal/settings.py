"""The portal's settings (FORDRING_ prefix, like every service)."""

from __future__ import annotations

from pydantic import Field, model_validator

from services.common.settings import CommonSettings


class PortalSettings(CommonSettings):
    service_name: str = "portal"
    # Sessions, console accounts and the audit log only: the portal owns no business data.
    mongo_database: str = "fordring_portal"
    # The portal's API is HTTP: the invoice pages and the console, beside /healthz, /readyz, /metrics.
    http_port: int = Field(default=8090, ge=0, le=65535)
    # Where customers reach the portal (the links on documents, e-mails and SMS start with it).
    # https in production: the session cookies are then Secure.
    public_url: str = "http://127.0.0.1:8090"
    # Checks the invoice links (shared with the renderer and the dispatcher that print them).
    link_secret: str = Field(default="", repr=False)
    # How long a link without an expiry (printed before links had one) is honoured after the invoice's
    # issue date.
    legacy_link_days: int = Field(default=400, ge=1)
    # The other services' gRPC targets.
    ledger_target: str = "127.0.0.1:50051"
    renderer_target: str = "127.0.0.1:50052"
    dispatcher_target: str = "127.0.0.1:50053"
    matcher_target: str = "127.0.0.1:50054"
    dunning_target: str = "127.0.0.1:50055"
    # A customer's session on one invoice page (the CSRF token of its forms), in hours.
    session_hours: float = Field(default=12.0, gt=0)
    # Open live pages (server-sent event streams) one replica serves at most.
    live_max: int = Field(default=5000, ge=1)
    # The console: how long an operator's session lasts (hours), and the login limit: after this many
    # failed logins to one account (or the second number from one address) within the window (minutes),
    # its logins are refused until the window has passed.
    console_session_hours: float = Field(default=8.0, gt=0)
    console_login_limit: int = Field(default=5, ge=1)
    console_login_limit_per_address: int = Field(default=50, ge=1)
    console_login_window_minutes: float = Field(default=15.0, gt=0)
    # The trace viewer: each event's trace id links to this template's {trace_id} (Jaeger:
    # "http://jaeger:16686/trace/{trace_id}"); empty: trace ids are shown without a link.
    trace_url: str = ""

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    @model_validator(mode="after")
    def _production(self) -> PortalSettings:
        if self.environment == "production":
            if len(self.link_secret) < 32:
                raise ValueError("link_secret must be at least 32 characters in production")
            if not self.service_token:
                raise ValueError("service_token is required (the portal reads every service over gRPC)")
            if not self.secure_cookies:
                raise ValueError("public_url must be https in production (the cookies are Secure)")
        elif not self.link_secret:
            raise ValueError("link_secret is required (invoice links must be signed)")
        return self
