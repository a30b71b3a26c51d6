"""`python -m services.renderer`: run one renderer replica (configured by FORDRING_* variables);
`python -m services.renderer outbox status|unpark|replay`: its outbox (services/common/outbox_admin.py)."""

from __future__ import annotations

import asyncio
import sys

from services.common.logs import setup_logging
from services.common.outbox_admin import outbox_main
from services.common.settings import load
from services.renderer.app import serve
from services.renderer.settings import RendererSettings


def main() -> None:
    settings = load(RendererSettings)
    if len(sys.argv) > 1:
        raise SystemExit(outbox_main(sys.argv[1:], settings))
    setup_logging(settings.service_name, level=settings.log_level, fmt=settings.log_format)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
