"""The sandbox clock: the real time plus an offset read from the stack, which only ever grows; and
never in production."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from services.common import sandbox_clock as store
from services.common.clock import FixedClock, SandboxClock
from services.common.runtime import ServiceRuntime
from services.common.settings import CommonSettings, SettingsError, load

START = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


class Offsets:
    """What the stack's document says, read after read."""

    def __init__(self, *values: float) -> None:
        self.values = list(values)

    async def read(self) -> float:
        return self.values.pop(0) if len(self.values) > 1 else self.values[0]


def sandbox(*offsets: float) -> SandboxClock:
    return SandboxClock(Offsets(*offsets).read, base=FixedClock(START))


async def test_now_is_the_real_time_plus_the_stacks_offset() -> None:
    clock = sandbox(40 * 86400.0)
    assert clock.now() == START, "before the first read there is no offset"
    assert await clock.refresh()
    assert clock.now() == START + timedelta(days=40)
    assert clock.offset_seconds == 40 * 86400


async def test_the_offset_only_grows() -> None:
    clock = sandbox(3600.0, 60.0, 3600.0, float("nan"), float("inf"), 7200.0)
    assert await clock.refresh()
    # An older copy of the document, the same value again, and nonsense change nothing.
    for _ in range(4):
        assert not await clock.refresh()
        assert clock.now() == START + timedelta(hours=1)
    assert await clock.refresh()
    assert clock.now() == START + timedelta(hours=2)


async def test_a_jump_wakes_who_waits_for_one_and_nothing_else_does() -> None:
    clock = sandbox(0.0)
    waiting = asyncio.ensure_future(clock.moved())
    await asyncio.sleep(0)
    assert not clock.take(0.0)
    await asyncio.sleep(0.01)
    assert not waiting.done()
    assert clock.take(86400.0)
    await asyncio.wait_for(waiting, timeout=1)
    later = asyncio.ensure_future(clock.moved())
    await asyncio.sleep(0.01)
    assert not later.done(), "a wait begun after a jump waits for the next one"
    later.cancel()


def test_production_refuses_the_sandbox_clock_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORDRING_ENVIRONMENT", "production")
    monkeypatch.setenv("FORDRING_SANDBOX_CLOCK", "true")
    with pytest.raises(SettingsError, match="FORDRING_SANDBOX_CLOCK"):
        load(CommonSettings)
    monkeypatch.setenv("FORDRING_SANDBOX_CLOCK", "false")
    assert not load(CommonSettings).sandbox_clock


def test_the_embedded_stack_may_have_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORDRING_ENVIRONMENT", "embedded")
    monkeypatch.setenv("FORDRING_SANDBOX_CLOCK", "true")
    settings = load(CommonSettings)
    assert settings.sandbox_clock
    assert settings.sandbox_clock_database == store.DATABASE, "the CLI writes where the services read"


async def test_the_runtime_runs_on_the_sandbox_clock_unless_given_one() -> None:
    settings = CommonSettings(sandbox_clock=True, mongo_uri="mongodb://127.0.0.1:1/?directConnection=true")
    built = ServiceRuntime(settings)
    given = ServiceRuntime(settings, clock=FixedClock(START))
    plain = ServiceRuntime(CommonSettings(mongo_uri=settings.mongo_uri))
    try:
        assert isinstance(built.clock, SandboxClock)
        assert given.clock.now() == START, "a test's clock is kept"
        assert not isinstance(plain.clock, SandboxClock)
    finally:
        for runtime in (built, given, plain):
            await runtime.mongo.close()


async def test_pause_ends_at_a_jump_of_the_sandbox_clock() -> None:
    settings = CommonSettings(mongo_uri="mongodb://127.0.0.1:1/?directConnection=true")
    clock = sandbox(0.0)
    runtime = ServiceRuntime(settings, clock=clock)
    try:
        pausing = asyncio.ensure_future(runtime.pause(3600))
        await asyncio.sleep(0.01)
        clock.take(86400.0)
        await asyncio.wait_for(pausing, timeout=1)
    finally:
        await runtime.mongo.close()
