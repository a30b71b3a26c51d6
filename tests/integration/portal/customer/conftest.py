from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.backends import Backend
from tests.support.portal import PortalWorld, portal_world_running


@pytest.fixture(scope="session")
async def portal_world(
    backend: Backend, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[PortalWorld]:
    """A ledger, renderer, dispatcher, channel sandbox and dunning service of their own, and a portal
    reading them, shared by the customer-side tests (each has its own tenant)."""
    async with portal_world_running(backend, tmp_path_factory.mktemp("portal")) as world:
        yield world
