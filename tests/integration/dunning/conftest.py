from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.backends import Backend
from tests.support.dunning import DunWorld, dun_world_running


@pytest.fixture(scope="session")
async def dun_world(backend: Backend) -> AsyncIterator[DunWorld]:
    """A ledger and a dunning service with their own clock, shared by the dunning tests: each test has
    its own tenant and moves the clock forward only (by weeks), from wherever it stands."""
    async with dun_world_running(backend) as world:
        yield world
