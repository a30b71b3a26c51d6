"""`python -m services.dispatcher`: run one dispatcher replica (configured by FORDRING_* variables)."""

from __future__ import annotations

import asyncio

from services.common.logs import setup_logging
from services.common.settings import load
from services.dispatcher.app import serve
from services.dispatcher.settings import DispatcherSettings


def main() -> None:
    settings = load(DispatcherSettings)
    setup_logging(settings.service_name, level=settings.log_level, fmt=settings.log_format)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
