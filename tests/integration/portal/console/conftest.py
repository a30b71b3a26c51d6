from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.backends import Backend
from tests.support.console import ConsoleWorld, console_world_running


@pytest.fixture(scope="session")
async def console_world(backend: Backend) -> AsyncIterator[ConsoleWorld]:
    """A ledger, matcher, dunning service and portal shared by the console tests: each test has its own
    tenant and accounts, and moves the clock forward only."""
    async with console_world_running(backend) as world:
        yield world
