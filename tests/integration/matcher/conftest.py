from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.backends import Backend
from tests.support.clock import MovableClock
from tests.support.matcher import MatchWorld, match_world_running


@pytest.fixture(scope="session")
async def match_world(backend: Backend, app_clock: MovableClock) -> AsyncIterator[MatchWorld]:
    """A ledger and a matcher of their own (own topics and databases) for the session's matcher tests."""
    async with match_world_running(backend, app_clock) as world:
        yield world
