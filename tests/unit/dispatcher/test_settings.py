"""The dispatcher refuses, in production, what only the sandbox accepts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.dispatcher.settings import WEBHOOK_PROVIDERS, DispatcherSettings

PRODUCTION = {
    "environment": "production",
    "link_secret": "s" * 32,
    "webhook_secrets": ",".join(f"{p}=secret-{p}" for p in WEBHOOK_PROVIDERS),
    "public_url": "https://faktura.example.no",
    **{f"{name}_api_key": f"real-{name}" for name in ("sms", "peppol", "efaktura", "vipps")},
    **{f"{name}_url": f"https://{name}.provider.example" for name in ("sms", "peppol", "efaktura", "vipps")},
}


def test_a_complete_production_configuration_is_taken() -> None:
    settings = DispatcherSettings(**PRODUCTION)  # type: ignore[arg-type]
    assert settings.secrets()["vipps"] == "secret-vipps"


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"link_secret": ""}, "link_secret is required"),
        ({"webhook_secrets": "email=x"}, "no secret for sms"),
        ({"sms_api_key": "sandbox"}, "sms_api_key is the sandbox's"),
        ({"vipps_url": "http://127.0.0.1:8099"}, "vipps_url is the local sandbox"),
        ({"public_url": "http://127.0.0.1:8084"}, "public_url"),
    ],
)
def test_sandbox_leftovers_are_refused_in_production(change: dict[str, str], said: str) -> None:
    with pytest.raises(ValidationError, match=said):
        DispatcherSettings(**{**PRODUCTION, **change})  # type: ignore[arg-type]


def test_the_embedded_defaults_are_fine_outside_production() -> None:
    assert DispatcherSettings().sms_api_key == "sandbox"


def test_a_password_is_never_sent_without_tls_in_production() -> None:
    with pytest.raises(ValidationError, match="smtp_security"):
        DispatcherSettings.model_validate({**PRODUCTION, "smtp_password": "secret"})
    tls = DispatcherSettings.model_validate({**PRODUCTION, "smtp_password": "secret", "smtp_security": "tls"})
    assert tls.smtp_security == "tls"
