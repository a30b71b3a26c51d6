"""`python -m services.<name>`: what every service's entry point does — its settings from FORDRING_*
variables, then either the outbox commands (`outbox status|unpark|replay`, services/common/outbox_admin.py)
or one replica run until SIGTERM."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from services.common.logs import setup_logging
from services.common.outbox_admin import outbox_main
from services.common.settings import CommonSettings, load

S = TypeVar("S", bound=CommonSettings)


def service_main(settings_type: type[S], serve: Callable[[S], Coroutine[Any, Any, None]]) -> None:
    settings = load(settings_type)
    if len(sys.argv) > 1:
        raise SystemExit(outbox_main(sys.argv[1:], settings))
    setup_logging(settings.service_name, level=settings.log_level, fmt=settings.log_format)
    asyncio.run(serve(settings))
