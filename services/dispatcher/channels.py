"""The channels this replica can send on: one adapter per channel, made from the settings once, the
registries' answers cached with expiry, and the webhook secrets by provider."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from services.common.cache import ExpiringLru
from services.dispatcher.adapters.base import (
    ChannelAdapter,
    ChannelError,
    ChannelName,
    Receipt,
    Recipient,
    Registry,
)
from services.dispatcher.settings import DispatcherSettings

log = logging.getLogger(__name__)


@runtime_checkable
class Batching(Protocol):
    """Channels that spool and hand over in batches (print, AvtaleGiro)."""

    channel: ChannelName

    async def close_batch(self) -> str | None: ...


@runtime_checkable
class Refusing(Protocol):
    """Batching channels that may refuse a spooled item when its batch closes (AvtaleGiro: a claim
    that missed Nets' deadline meanwhile), reported as receipts until they are applied."""

    def refusals(self) -> list[Receipt]: ...

    def forget_refusals(self, delivery_ids: Iterable[str]) -> None: ...


class Channels:
    def __init__(
        self,
        adapters: Iterable[ChannelAdapter],
        registries: Iterable[Registry] = (),
        *,
        secrets: Mapping[str, str] | None = None,
        registry_seconds: float = 3600.0,
    ) -> None:
        self.adapters: dict[ChannelName, ChannelAdapter] = {a.channel: a for a in adapters}
        self.by_provider: dict[str, ChannelAdapter] = {a.provider: a for a in self.adapters.values()}
        self.registries: dict[ChannelName, Registry] = {r.channel: r for r in registries}
        self.secrets = dict(secrets or {})
        self._registry_seconds = registry_seconds
        self._answers: ExpiringLru[bool] = ExpiringLru(100_000)

    def batching(self) -> list[Batching]:
        return [a for a in self.adapters.values() if isinstance(a, Batching)]

    async def reachable(self, channel: ChannelName, recipient: Recipient, key: str) -> bool:
        """Whether the channel's registry knows the receiver (True for channels without a registry).
        A registry that cannot answer counts as "not now": the next channel is tried."""
        registry = self.registries.get(channel)
        if registry is None:
            return True
        cache_key = f"{channel}:{key}"
        found, answer = self._answers.get(cache_key)
        if found and answer is not None:
            return answer
        try:
            answer = bool(await registry.reachable(recipient))
        except ChannelError as exc:
            log.warning("dispatcher: the %s registry did not answer (%s)", channel, exc.code or exc.reason)
            return False
        self._answers.put(cache_key, answer, self._registry_seconds)
        return answer

    async def close(self) -> None:
        for adapter in self.adapters.values():
            with contextlib.suppress(Exception):
                await adapter.close()
        for registry in self.registries.values():
            with contextlib.suppress(Exception):
                await registry.close()


def from_settings(settings: DispatcherSettings) -> Channels:
    """Every channel, pointed at the providers the settings name (the sandbox when embedded)."""
    from services.dispatcher.adapters.avtalegiro import AvtaleGiroAdapter
    from services.dispatcher.adapters.efaktura import EfakturaAdapter
    from services.dispatcher.adapters.email import EmailAdapter
    from services.dispatcher.adapters.peppol import PeppolAdapter, PeppolRegistry
    from services.dispatcher.adapters.print import PrintAdapter
    from services.dispatcher.adapters.sms import SmsAdapter
    from services.dispatcher.adapters.vipps import VippsAdapter

    timeout = settings.provider_timeout
    efaktura = EfakturaAdapter(
        base_url=settings.efaktura_url, api_key=settings.efaktura_api_key, timeout=timeout
    )
    adapters: list[Any] = [
        EmailAdapter(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls={"starttls": True, "tls": False, "opportunistic": None, "none": False}[
                settings.smtp_security
            ],
            use_tls=settings.smtp_security == "tls",
            bounce_address=settings.smtp_bounce_address,
            sender=settings.email_sender,
            timeout=max(timeout, 30.0),
            pool_size=settings.smtp_connections,
        ),
        SmsAdapter(
            base_url=settings.sms_url,
            api_key=settings.sms_api_key,
            sender=settings.sms_sender,
            timeout=timeout,
        ),
        PeppolAdapter(settings.peppol_url, settings.peppol_api_key, timeout=timeout),
        efaktura,
        VippsAdapter(
            base_url=settings.vipps_url,
            api_key=settings.vipps_api_key,
            subscription_key=settings.vipps_subscription_key,
            merchant_serial_number=settings.vipps_merchant_serial_number,
            timeout=timeout,
        ),
        PrintAdapter(drop=settings.print_drop),
        AvtaleGiroAdapter(
            nets_dir=settings.nets_dir,
            data_transmitter=settings.avtalegiro_data_transmitter,
            data_recipient=settings.avtalegiro_data_recipient,
        ),
    ]
    registries: list[Any] = [
        PeppolRegistry(settings.peppol_url, settings.peppol_api_key, timeout=timeout),
        efaktura.registry,
    ]
    return Channels(
        adapters, registries, secrets=settings.secrets(), registry_seconds=settings.registry_cache_seconds
    )
