"""`python -m services.renderer`: run one renderer replica (configured by FORDRING_* variables)."""

from __future__ import annotations

import asyncio

from services.common.logs import setup_logging
from services.common.settings import load
from services.renderer.app import serve
from services.renderer.settings import RendererSettings


def main() -> None:
    settings = load(RendererSettings)
    setup_logging(settings.service_name, level=settings.log_level, fmt=settings.log_format)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
