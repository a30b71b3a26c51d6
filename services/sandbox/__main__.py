"""`python -m services.sandbox`: the sandbox providers for the embedded stack and the tests."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from services.common.logs import setup_logging
from services.sandbox.app import serve
from services.sandbox.settings import SandboxSettings


def main() -> None:
    settings = SandboxSettings()
    setup_logging("sandbox", level=settings.log_level, fmt="json")

    async def run() -> None:
        task = asyncio.create_task(serve(settings))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(run())


if __name__ == "__main__":
    main()
