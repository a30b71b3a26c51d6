"""The supervisor with small stand-in children: start until healthy, restart after a crash, stop in order."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from services.cli.components import Component, StackPlan, Tier
from services.cli.home import Home
from services.cli.ports import PortClaim, port_problems
from services.cli.probes import HttpProbe, TcpProbe
from services.cli.processes import pid_alive, tail
from services.cli.supervisor import StartupFailedError, Supervisor


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def web_server(name: str, port: int, tier: Tier = Tier.SERVICE) -> Component:
    return Component(
        name=name,
        label=f"{name} server",
        tier=tier,
        argv=(sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)),
        env={},
        ports=(PortClaim(port, name, f"--{name}-port"),),
        probe=HttpProbe("127.0.0.1", port, path="/"),
        stop_grace=5.0,
        health_timeout=20.0,
    )


def plan_of(tmp_path: Path, *components: Component) -> StackPlan:
    return StackPlan(
        home=Home(tmp_path),
        api_key="key",
        kafka_bootstrap="",
        mongo_uri="",
        services=(),
        components=components,
    )


def wait_until(condition: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_starts_restarts_and_stops(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        web_server("infra", free_port(), Tier.INFRA),
        web_server("app", free_port()),
    )
    changes: list[dict[str, int]] = []
    supervisor = Supervisor(plan, Console(quiet=True), threading.Event(), changes.append)
    try:
        supervisor.start()
        first = supervisor.pids()
        assert set(first) == {"infra", "app"}
        assert all(component.probe.check() is None for component in plan.components)

        os.kill(first["app"], signal.SIGKILL)

        def restarted() -> bool:
            supervisor.step()
            return supervisor.pids()["app"] != first["app"] and plan.components[1].probe.check() is None

        wait_until(restarted)
        assert changes[-1]["app"] == supervisor.pids()["app"]
        assert changes[-1]["infra"] == first["infra"]
        assert "=== " in tail(tmp_path / "logs" / "app.log")[0]
    finally:
        supervisor.stop_all()
    assert not any(pid_alive(pid) for pid in supervisor.pids().values())


def test_a_child_that_dies_while_starting_fails_the_start_with_its_log(tmp_path: Path) -> None:
    broken = Component(
        name="broken",
        label="broken service",
        tier=Tier.SERVICE,
        argv=(sys.executable, "-c", "import sys; print('cannot start: no database'); sys.exit(3)"),
        env={},
        ports=(),
        probe=TcpProbe("127.0.0.1", free_port()),
        stop_grace=1.0,
        health_timeout=20.0,
    )
    supervisor = Supervisor(plan_of(tmp_path, broken), Console(quiet=True), threading.Event())
    with pytest.raises(StartupFailedError) as failure:
        supervisor.start()
    supervisor.stop_all()
    assert failure.value.reason == "exited with code 3 while starting"
    assert failure.value.log_tail[-1] == "cannot start: no database"


def test_ports_in_use_are_named_with_the_flag_that_moves_them() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = int(holder.getsockname()[1])
        free = free_port()
        problems = port_problems(
            [
                PortClaim(taken, "Kafka broker", "--kafka-port"),
                PortClaim(free, "MongoDB server", "--mongo-port"),
            ]
        )
    assert problems == [
        f"port {taken} (Kafka broker) is in use — stop whatever holds it or pass --kafka-port",
    ]


def test_a_port_asked_for_twice() -> None:
    port = free_port()
    problems = port_problems(
        [PortClaim(port, "ledger gRPC", "--grpc-port"), PortClaim(port, "ledger HTTP", "--http-port")]
    )
    assert len(problems) == 1
    assert "asked for twice" in problems[0]
