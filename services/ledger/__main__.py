"""`python -m services.ledger`: run one ledger replica (configured by FORDRING_* variables);
`python -m services.ledger tenants ...`: create tenants and API keys (see admin.py)."""

from __future__ import annotations

import asyncio
import sys

from services.common.logs import setup_logging
from services.common.settings import load
from services.ledger.app import serve
from services.ledger.settings import LedgerSettings


def main() -> None:
    if len(sys.argv) > 1:
        from services.ledger.admin import main as admin

        raise SystemExit(admin(sys.argv[1:]))
    settings = load(LedgerSettings)
    setup_logging(settings.service_name, level=settings.log_level, fmt=settings.log_format)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
