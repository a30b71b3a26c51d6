from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.backends import Backend
from tests.support.clock import MovableClock
from tests.support.dispatcher import DispatchWorld
from tests.support.portal import PortalWorld, portal_world_running


@pytest.fixture(scope="session")
async def portal_world(
    backend: Backend, dispatch_world: DispatchWorld, app_clock: MovableClock
) -> AsyncIterator[PortalWorld]:
    """The session's dispatch world with a dunning service and a portal reading them."""
    async with portal_world_running(backend, dispatch_world, app_clock) as world:
        yield world
