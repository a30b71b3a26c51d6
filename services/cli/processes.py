"""Child processes of the stack: start with a log file, check, signal, and read their logs back."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

_PR_SET_PDEATHSIG = 1
# Starts the lines of each run of a child in its log file.
RUN_MARKER = "=== "


def _parent_death_signal() -> Callable[[], None] | None:
    """On Linux, children get SIGTERM when the supervisor dies, even by SIGKILL: no stray brokers on ports."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    prctl = libc.prctl

    def set_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return set_signal


def spawn(argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start a child in its own process group (Ctrl-C reaches only the supervisor), output to log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        log.write(f"\n{RUN_MARKER}{stamp} fordring up: {' '.join(argv)}\n".encode())
        log.flush()
        return subprocess.Popen(  # noqa: S603 - argv is built by the launcher, never from user text
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            process_group=0,
            preexec_fn=_parent_death_signal(),  # noqa: PLW1509 - only calls prctl, set up before the fork
        )


def spawn_attached(argv: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start a child that writes to our terminal but, in its own process group, leaves Ctrl-C to us."""
    return subprocess.Popen(  # noqa: S603 - argv is built by the launcher, never from user text
        list(argv),
        stdin=subprocess.DEVNULL,
        env={**os.environ, **env},
        process_group=0,
        preexec_fn=_parent_death_signal(),  # noqa: PLW1509 - only calls prctl, set up before the fork
    )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return True
    # A zombie has exited; its parent has just not collected it yet.
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def stop_processes(
    processes: Iterable[subprocess.Popen[bytes]], grace: float, hurry: Callable[[], bool] = lambda: False
) -> None:
    """SIGTERM, wait up to `grace` seconds (less if `hurry()` turns true), then SIGKILL what is left."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while running and time.monotonic() < deadline and not hurry():
        time.sleep(0.05)
        running = [process for process in running if process.poll() is None]
    for process in running:
        signal_group(process, signal.SIGKILL)
    for process in running:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


def wait_for_pid_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return not pid_alive(pid)


def tail(path: Path, lines: int = 20) -> list[str]:
    """The last lines of a log file's latest run (reads at most 64 KiB from its end)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 65536))
            data = handle.read()
    except OSError:
        return []
    text = data.decode("utf-8", "replace").splitlines()
    starts = [index for index, line in enumerate(text) if line.startswith(RUN_MARKER)]
    return text[starts[-1] if starts else 0 :][-lines:]


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"
