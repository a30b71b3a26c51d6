"""`python -m services.ledger`: run one ledger replica (configured by FORDRING_* variables)."""

from __future__ import annotations

import asyncio

from services.common.logs import setup_logging
from services.common.settings import load
from services.ledger.app import serve
from services.ledger.settings import LedgerSettings


def main() -> None:
    settings = load(LedgerSettings)
    setup_logging(settings.service_name, level=settings.log_level, fmt=settings.log_format)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
