"""A detached `fordring up` stack driven through the CLI, as a person or an ERP's script would: the
e2e tests' shared handle on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.stack_ports import stack_flags


@dataclass(frozen=True)
class Stack:
    home: Path
    env: dict[str, str]

    def fordring(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "services.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def json(self, *args: str) -> Any:
        done = self.fordring(*args, "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    def record(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.home / "stack.json").read_text())
        return data

    def invoices(self) -> list[dict[str, Any]]:
        listed = self.fordring("invoices", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        found: list[dict[str, Any]] = json.loads(listed.stdout)
        return found


@contextmanager
def detached_stack(home: Path) -> Iterator[tuple[Stack, subprocess.CompletedProcess[str]]]:
    """`fordring up --detach` in `home` on free ports (and what it printed); `fordring down` after,
    which must leave no stack record behind."""
    env = {**os.environ, "FORDRING_HOME": str(home), "COLUMNS": "200"}
    for name in ("FORDRING_TARGET", "FORDRING_API_KEY"):
        env.pop(name, None)
    running = Stack(home, env)
    started = running.fordring("up", "--detach", *stack_flags(), timeout=400)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield running, started
    finally:
        stopped = running.fordring("down", timeout=200)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert not (home / "stack.json").exists()
