"""An embedded stack of the benchmarks' own: broker, database and services as separate processes,
in a temporary folder on free ports (what `fordring up --detach` starts)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def embedded_stack(console: Console) -> Iterator[dict[str, Any]]:
    """Yields the stack's stack.json (targets, API key, MongoDB URI); stops it at the end."""
    home = Path(tempfile.mkdtemp(prefix="fordring-bench-"))
    ports = {f"--{n}-port": str(free_port()) for n in ("kafka", "mongo", "grpc", "http")}
    base = [sys.executable, "-m", "services.cli", "--home", str(home)]
    console.print(f"starting an embedded stack in {home} …")
    args = [*base, "up", "--detach", *(x for kv in ports.items() for x in kv)]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    try:
        yield json.loads((home / "stack.json").read_text())
    finally:
        subprocess.run([*base, "down"], check=False, stdout=subprocess.DEVNULL)
