"""A Kafka-protocol broker of a test's own, to kill and restart (the session's broker stays up).

Started with the launcher's own command line (services/cli/components.py), so, like `fordring up`,
every start reports a new cluster id and begins with an empty log.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from services.cli.components import HOST, broker_argv, tansu_binary
from services.cli.probes import TcpProbe
from services.cli.processes import signal_group, spawn, stop_processes, tail
from tests.support.backends import free_port


class OwnBroker:
    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.bootstrap = f"{HOST}:{self.port}"
        self._log = workdir / f"kafka-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        self._process = spawn(broker_argv(tansu_binary(), self.port), {}, self._log)
        probe = TcpProbe(HOST, self.port)
        deadline = time.monotonic() + timeout
        while probe.check() is not None:
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the test broker did not start:\n" + "\n".join(tail(self._log)))
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: the broker vanishes with its (in-memory) log."""
        if self._process is not None:
            signal_group(self._process, signal.SIGKILL)
            self._process.wait(timeout=10)
            self._process = None

    def stop(self) -> None:
        if self._process is not None:
            stop_processes([self._process], grace=5.0)
            self._process = None
