"""Ports for a `fordring up` started by a test.

The stack derives ports from the four it is given: each further service follows the first one's gRPC
and HTTP ports, the sandbox follows the HTTP port. Were the four picked by binding port 0, they and
the ports derived from them would lie in the ephemeral range, where any outgoing connection on the
machine may hold one as its source port when the stack (or a service the supervisor restarts)
binds it. So every port of the stack is picked below that range and checked free together.
"""

from __future__ import annotations

import random
from pathlib import Path

from services.cli.components import PortChoice
from services.cli.ports import port_in_use

_LOWEST = 10_000


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def stack_claims(choice: PortChoice) -> list[int]:
    """Every port a stack started with `choice` listens on."""
    services = choice.services()
    return [
        choice.kafka,
        choice.mongo,
        *(spec.grpc_port for spec in services if spec.grpc_port),
        *(spec.http_port for spec in services),
        *(spec.public_port for spec in services if spec.public_port),
        choice.sandbox_http,
        choice.sandbox_smtp,
    ]


def stack_ports() -> PortChoice:
    """Ports for a stack, every one free and below the ephemeral range."""
    below = _ephemeral_start()
    pick = random.SystemRandom()
    for _ in range(1000):
        choice = PortChoice(*(pick.randrange(_LOWEST, below - 100) for _ in range(4)))
        ports = stack_claims(choice)
        if len(set(ports)) == len(ports) and all(
            1024 <= port < below and not port_in_use(port) for port in ports
        ):
            return choice
    raise RuntimeError(f"no free ports for a stack below {below}")


def stack_flags(choice: PortChoice | None = None) -> list[str]:
    """`fordring up` flags for `choice` (default: new free ports)."""
    ports = choice or stack_ports()
    return [
        f"--kafka-port={ports.kafka}",
        f"--mongo-port={ports.mongo}",
        f"--grpc-port={ports.grpc}",
        f"--http-port={ports.http}",
    ]
