"""A PAUSE that Klipper queues behind its G-code lock is waited for, never failed."""

from __future__ import annotations

import asyncio

import pytest

from failwatch_moonraker.printer.actions import ActionRunner
from failwatch_moonraker.printer.moonraker import MoonrakerError


class SlowKlipper:
    """Answers printer.print.pause when ``release`` is set (or at once without one)."""

    def __init__(self, release: asyncio.Event | None = None, error: str = "") -> None:
        self.release = release
        self.error = error
        self.calls: list[str] = []

    async def call(self, method: str, params: dict[str, object] | None = None,
                   timeout: float = 10.0) -> object:
        self.calls.append(method)
        if method == "printer.print.pause" and self.release is not None:
            await self.release.wait()
        if self.error:
            raise MoonrakerError(400, self.error, method)
        return "ok"


async def test_an_answered_pause_did_not_wait() -> None:
    said: list[str] = []

    async def queued() -> None:
        said.append("queued")

    runner = ActionRunner(SlowKlipper(), pause_patience=0.05, on_pause_queued=queued)
    results = await runner.run(["pause"], "x")
    assert results[0].ok and results[0].waited == 0.0 and said == []


async def test_a_queued_pause_is_waited_for_and_said_once() -> None:
    release = asyncio.Event()
    said: list[str] = []

    async def queued() -> None:
        said.append("queued")

    runner = ActionRunner(SlowKlipper(release), pause_patience=0.05, on_pause_queued=queued)
    task = asyncio.create_task(runner.run(["pause", "heaters_off"], "x"))
    await asyncio.sleep(0.3)
    assert not task.done() and said == ["queued"]
    release.set()
    results = await asyncio.wait_for(task, 2)
    assert [(r.action, r.ok) for r in results] == [("pause", True), ("heaters_off", True)]
    assert results[0].waited >= 0.3


async def test_a_queued_pause_is_confirmed_by_the_printer_state() -> None:
    release = asyncio.Event()
    paused = asyncio.Event()
    client = SlowKlipper(release)

    async def queued() -> None:
        paused.set()  # the status shows the print paused before the answer comes

    runner = ActionRunner(client, pause_patience=0.05, on_pause_queued=queued,
                          wait_paused=paused.wait)
    waited = await asyncio.wait_for(runner.pause(), 2)
    assert waited >= 0.05
    release.set()  # the late answer is nobody's error
    await asyncio.sleep(0.05)


async def test_a_parking_pause_macro_already_paused_is_not_busy() -> None:
    release = asyncio.Event()
    paused = asyncio.Event()
    paused.set()
    said: list[str] = []

    async def queued() -> None:
        said.append("queued")

    runner = ActionRunner(SlowKlipper(release), pause_patience=0.05, on_pause_queued=queued,
                          wait_paused=paused.wait)
    assert await asyncio.wait_for(runner.pause(), 2) == 0.0
    assert said == []
    release.set()


async def test_a_queued_pause_that_fails_is_reported() -> None:
    release = asyncio.Event()
    release.set()
    runner = ActionRunner(SlowKlipper(release, error="Klippy Disconnected"), pause_patience=0.05)
    results = await runner.run(["pause"], "x")
    assert not results[0].ok and "Klippy Disconnected" in results[0].error
    with pytest.raises(MoonrakerError):
        await runner.pause()
