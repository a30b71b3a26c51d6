"""Wiring: build the dunning service from settings, start it, stop it gracefully."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from fordring.dunning.v1 import dunning_pb2, dunning_pb2_grpc
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from services.common.clock import Clock
from services.common.directory import DirectoryClient
from services.common.lease import Lease
from services.common.ledger_client import LedgerClient
from services.common.retention import Retained
from services.common.runtime import ServiceRuntime, serve_until_signal
from services.common.settings import SettingsError
from services.common.timers import Timers
from services.dunning.api import DunningApi
from services.dunning.domain.interest import RateTable
from services.dunning.domain.law import Jurisdiction
from services.dunning.exports import export_file, write_atomically
from services.dunning.handlers import register
from services.dunning.policies import PolicyBook
from services.dunning.projection import Projection
from services.dunning.settings import DunningSettings
from services.dunning.stepping import Stepper, Tenants, load_rates
from services.dunning.store import PAYMENTS, STEP_TIMER, DunningStore

log = logging.getLogger(__name__)
DUNNING_SERVICE = dunning_pb2.DESCRIPTOR.services_by_name["DunningService"].full_name
_meter = metrics.get_meter("fordring.dunning")


class DunningApp:
    """One dunning replica: the gRPC API, the consumers that keep the cases, the step timers (shared
    by every replica through their leases), the outbox."""

    def __init__(
        self,
        settings: DunningSettings,
        *,
        clock: Clock | None = None,
        directory: DirectoryClient | None = None,
    ) -> None:
        self.settings = settings
        # A decided payment is remembered a while (its events may come late, from another topic).
        self.runtime = ServiceRuntime(
            settings, clock=clock, retained=(Retained(PAYMENTS, "done_at", timedelta(days=30)),)
        )
        self.clock = self.runtime.clock
        self.store = DunningStore(self.runtime.mongo, settings.mongo_database)
        self.directory = directory or DirectoryClient(
            settings.ledger_target, settings.service_token, caller="dunning"
        )
        self.ledger = LedgerClient(settings.ledger_target, settings.service_token, caller="dunning")
        self.timers = Timers(
            self.store.db, self.clock, lease_seconds=settings.step_lease_seconds, batch=settings.step_batch
        )
        self.tenants = Tenants(self.directory)
        self.policies = PolicyBook(self.store, self.clock)
        wake = self.runtime.relay.wake
        self.stepper = Stepper(
            self.store,
            self.timers,
            self.policies,
            self.tenants,
            self.clock,
            held_recheck=settings.held_recheck_seconds,
            rates=_rates(settings),
            on_commit=wake,
        )
        self.projection = Projection(
            self.store,
            self.stepper,
            self.tenants,
            self.clock,
            rejected_recheck=settings.rejected_recheck_seconds,
            on_commit=wake,
            wake=self.timers.wake,
        )
        register(self.runtime.broker, settings, self.projection, settings.consumer_group)
        self.grpc = self.runtime.grpc_server(self.directory)
        api = DunningApi(
            self.store,
            self.policies,
            self.stepper,
            self.projection,
            self.tenants,
            self.ledger,
            self.clock,
            on_commit=wake,
        )
        self.grpc.add(
            lambda server: dunning_pb2_grpc.add_DunningServiceServicer_to_server(api, server), DUNNING_SERVICE
        )
        # One replica writes the export files at a time (each writes them whole; two would only
        # repeat the work).
        self._export_lease = Lease(self.store.db, "collection-exports", self.clock, seconds=900)
        self._held = 0
        self._backlog = (0, 0.0)
        _meter.create_observable_gauge(
            "fordring_dunning_held",
            [self._observe_held],
            description="Steps due but held (a payment, a pause …)",
        )
        _meter.create_observable_gauge(
            "fordring_dunning_steps_due",
            [self._observe_due],
            description="Cases whose next look is due and not yet taken",
        )
        _meter.create_observable_gauge(
            "fordring_dunning_steps_late_seconds",
            [self._observe_late],
            description="How late the oldest due case is",
        )

    def _observe_held(self, _: CallbackOptions) -> list[Observation]:
        return [Observation(self._held)]

    def _observe_due(self, _: CallbackOptions) -> list[Observation]:
        return [Observation(self._backlog[0])]

    def _observe_late(self, _: CallbackOptions) -> list[Observation]:
        return [Observation(self._backlog[1])]

    @property
    def consumers_ready(self) -> asyncio.Event:
        return self.runtime.consumers_ready

    async def start(self) -> None:
        await self.runtime.start()
        await self.store.ensure_indexes()
        await self.timers.ensure_indexes()
        self.runtime.spawn(
            self.timers.run({STEP_TIMER: self.stepper.run}, self.runtime.stopping), "dunning-steps"
        )
        self.runtime.spawn_every(15, self._count, "dunning-gauges")
        if self.settings.export_dir:
            root = Path(self.settings.export_dir)
            self.runtime.spawn_every(300, lambda: self.write_exports(root), "collection-exports")
        await self.runtime.serve(self.grpc)
        log.info("dunning ready: gRPC on %s, HTTP on %s", self.grpc.port, self.runtime.http.port)

    async def _count(self) -> None:
        self._held = await self.store.cases.count_documents({"held": {"$exists": True}})
        self._backlog = await self.timers.backlog()

    async def write_exports(self, root: Path) -> list[Path]:
        """Each tenant's file of each day with hand-offs, written (again, whole) while the day's claims
        come in: the agency picks up yesterday's, complete."""
        if not await self._export_lease.hold():
            return []
        recent = (self.clock.now() - timedelta(days=2)).date().isoformat()
        cursor = await self.store.exports.aggregate(
            [
                {"$match": {"day": {"$gte": recent}}},
                {"$group": {"_id": {"tenant_id": "$tenant_id", "day": "$day"}, "n": {"$sum": 1}}},
            ]
        )
        days = await cursor.to_list()
        written = []
        for group in days:
            tenant_id, day = group["_id"]["tenant_id"], group["_id"]["day"]
            name = f"collection-{tenant_id}-{day}.jsonl"
            claims = (
                await self.store.exports.find({"tenant_id": tenant_id, "day": day}).sort("_id", 1).to_list()
            )
            content = await export_file(self.ledger, tenant_id, claims)
            written.append(write_atomically(root / tenant_id, name, content))
        return written

    async def stop(self) -> None:
        await self.runtime.stop_serving(self.grpc)

        async def close_clients() -> None:
            await self.directory.close()
            await self.ledger.close()

        await self.runtime.stop(before_close=close_clients)


def _rates(settings: DunningSettings) -> Mapping[Jurisdiction, RateTable]:
    try:
        return load_rates(settings.rate_files)
    except (OSError, ValueError, KeyError) as exc:
        raise SettingsError(f"FORDRING_RATE_FILES: {exc}") from None


async def serve(settings: DunningSettings) -> None:
    await serve_until_signal(DunningApp(settings), "dunning")
