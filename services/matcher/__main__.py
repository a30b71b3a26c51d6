"""`python -m services.matcher`: run one matcher replica (configured by FORDRING_* variables);
`python -m services.matcher outbox status|unpark|replay`: its outbox (services/common/outbox_admin.py)."""

from __future__ import annotations

import asyncio
import sys

from services.common.logs import setup_logging
from services.common.outbox_admin import outbox_main
from services.common.settings import load
from services.matcher.app import serve
from services.matcher.settings import MatcherSettings


def main() -> None:
    settings = load(MatcherSettings)
    if len(sys.argv) > 1:
        raise SystemExit(outbox_main(sys.argv[1:], settings))
    setup_logging(settings.service_name, level=settings.log_level, fmt=settings.log_format)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
