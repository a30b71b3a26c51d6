"""A bank file to the matcher (ImportPayments, client-streamed): the header, then the file in chunks,
with the bytes sent as a progress bar and a spinner while the matcher matches. `fordring payments
import` and the demo send their files this way."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

from fordring.matcher.v1 import matcher_pb2 as pb
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.status import Status

from services.cli.client import Connection, RetryPolicy, matcher_stub, with_retries

CHUNK_BYTES = 256 * 1024
# The matcher checks the whole file, then decides every payment before it answers: a large file takes
# minutes. Sending again is safe: the same file is recognised and nothing is applied twice.
IMPORT_RETRIES = RetryPolicy(give_up_after=120.0, call_timeout=3600.0)
FORMATS = ("ocr_giro", "camt.053", "camt.054", "bgmax")


def file_chunks(path: Path, size: int = CHUNK_BYTES) -> Callable[[], Iterator[bytes]]:
    """The file's chunks, read as they are sent (a new pass for each attempt)."""

    def read() -> Iterator[bytes]:
        with path.open("rb") as handle:
            while chunk := handle.read(size):
                yield chunk

    return read


def content_chunks(content: bytes, size: int = CHUNK_BYTES) -> Callable[[], Iterator[bytes]]:
    return lambda: (content[i : i + size] for i in range(0, len(content), size))


class _Display:
    """What the person waiting sees on stderr: bytes sent, then "matching…" until the answer."""

    def __init__(self, console: Console | None, filename: str, total: int) -> None:
        # Only on a terminal: piped or captured output gets the summary alone.
        self.console = console if console is not None and console.is_terminal else None
        self.progress: Progress | None = None
        self.status: Status | None = None
        if self.console is not None:
            self.progress = Progress(
                TextColumn(f"[bold]sending[/bold] {filename}", markup=True),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self.task = self.progress.add_task("send", total=total)

    def sending(self) -> None:
        self._stop_status()
        if self.progress is not None:
            self.progress.reset(self.task)
            self.progress.start()

    def sent(self, count: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, count)

    def matching(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        if self.console is not None and self.status is None:
            self.status = self.console.status("matching…", spinner="dots")
            self.status.start()

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        self._stop_status()

    def _stop_status(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None


async def import_bank_file(
    connection: Connection,
    filename: str,
    chunks: Callable[[], Iterator[bytes]],
    size: int,
    *,
    file_format: str = "",
    console: Console | None = None,
    retries: RetryPolicy = IMPORT_RETRIES,
) -> pb.ImportPaymentsResponse:
    """Send one bank file; the matcher's summary of it. `console`: where progress is shown (None: quiet).
    A refused file raises the RPC error (INVALID_ARGUMENT with every problem as a field violation)."""
    display = _Display(console, filename, size)

    async def requests() -> AsyncIterator[pb.ImportPaymentsRequest]:
        display.sending()
        yield pb.ImportPaymentsRequest(header=pb.ImportHeader(filename=filename, format=file_format))
        for chunk in chunks():
            yield pb.ImportPaymentsRequest(chunk=chunk)
            display.sent(len(chunk))
        display.matching()

    try:
        async with matcher_stub(connection) as stub:
            return await with_retries(
                lambda: stub.ImportPayments(
                    requests(), metadata=connection.metadata, timeout=retries.call_timeout
                ),
                retries,
            )
    finally:
        display.close()
