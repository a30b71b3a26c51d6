"""Checks that the ports a stack needs are free before anything starts."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class PortClaim:
    port: int
    label: str
    flag: str


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR as servers set it, so connections lingering in TIME_WAIT do not count as "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def port_problems(claims: Iterable[PortClaim]) -> list[str]:
    """One message per port that is taken or claimed twice, naming the flag that moves it."""
    problems: list[str] = []
    seen: dict[int, PortClaim] = {}
    for claim in claims:
        if claim.port in seen:
            other = seen[claim.port]
            problems.append(
                f"port {claim.port} is asked for twice ({other.label} and {claim.label})"
                f" — pass {claim.flag} or {other.flag} to tell them apart"
            )
            continue
        seen[claim.port] = claim
        if port_in_use(claim.port):
            problems.append(
                f"port {claim.port} ({claim.label}) is in use — stop whatever holds it or pass {claim.flag}"
            )
    return problems
