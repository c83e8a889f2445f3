"""Farm mode end to end: three printers, three real Moonrakers, three emulated Klippys.

One process watches them all; one printer failing, one with a dead camera, one
with refused credentials or a Moonraker that went away must never slow or stop
the watching of the others. Assertions are on what each printer saw: the
predictor requests made for it and the PAUSE lines at its Klippy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from failwatch_moonraker.config import load_config
from failwatch_moonraker.farm import Farm
from sim.farm_config import farm_config_for
from sim.harness import SimPrinter

pytestmark = pytest.mark.usefixtures("require_moonraker")

QUIET = 0.02
BAD = 3.0


def fails_after(quiet_frames: int) -> Callable[[int, str], float]:
    return lambda frame, print_id: QUIET if frame < quiet_frames else BAD


@contextlib.asynccontextmanager
async def printers(*names: str) -> AsyncIterator[dict[str, SimPrinter]]:
    async with contextlib.AsyncExitStack() as stack:
        sims = {name: SimPrinter() for name in names}
        for sim in sims.values():
            stack.push_async_callback(sim.stop)
        await asyncio.gather(*(sim.start() for sim in sims.values()))
        yield sims


@contextlib.asynccontextmanager
async def running_farm(cfg: Path) -> AsyncIterator[Farm]:
    farm = Farm(load_config(cfg), restart_delay=1.0)
    task = asyncio.create_task(farm.run())
    try:
        await asyncio.wait_for(farm.started.wait(), 10)
        await asyncio.wait_for(asyncio.gather(
            *(d.client.ready.wait() for d in farm.daemons.values())), 20)
        yield farm
    finally:
        farm.stop()
        await asyncio.wait_for(task, 20)


def pauses(printer: SimPrinter) -> list[str]:
    return [line for line in printer.klippy.gcode_lines if line.split()[:1] == ["PAUSE"]]


async def rising(sims: Mapping[str, SimPrinter], names: list[str], frames: int,
                 timeout: float = 10.0) -> None:
    """Each named printer's predictor gets ``frames`` more requests within ``timeout``."""
    start = {name: len(sims[name].predictor.requests) for name in names}
    await asyncio.gather(*(sims[name].predictor.wait_for_requests(start[name] + frames,
                                                                  timeout=timeout)
                           for name in names))


async def test_only_the_failing_printer_is_paused(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with printers("good", "bad", "blind") as sims:
        sims["bad"].predictor.score = fails_after(8)
        sims["blind"].camera.mode = "refused"
        cfg = farm_config_for(sims, tmp_path / "failwatch.cfg")
        async with running_farm(cfg) as farm:
            assert sorted(farm.daemons) == ["bad", "blind", "good"]
            jobs: dict[str, Any] = dict(zip(sims, await asyncio.gather(
                *(sim.start_print(f"{name}.gcode") for name, sim in sims.items())), strict=True))
            await sims["bad"].klippy.wait_for_gcode(r"^PAUSE$", timeout=20)
            await sims["bad"].klippy.wait_for_print_state("paused", timeout=5)
            # after the pause, the healthy printer is still watched at its pace
            await rising(sims, ["good"], 10, timeout=5)
            assert sims["blind"].predictor.requests == []  # no picture, nothing to score
            assert farm.daemons["blind"].can_watch()
            # the camera comes back: that printer is watched again, on its own
            sims["blind"].camera.mode = "ok"
            await rising(sims, ["blind", "good"], 5, timeout=20)
            bad_frames = len(sims["bad"].predictor.requests)
            await rising(sims, ["good", "blind"], 5, timeout=5)
            assert len(sims["bad"].predictor.requests) == bad_frames  # paused: not scored
        for name, sim in sims.items():
            assert {r["print_id"] for r in sim.predictor.requests} == {jobs[name]["job_id"]}
        assert len(pauses(sims["bad"])) == 1
        assert pauses(sims["good"]) == [] and pauses(sims["blind"]) == []
        assert sims["good"].klippy.status["print_stats"]["state"] == "printing"
        assert sims["blind"].klippy.status["print_stats"]["state"] == "printing"
        line = await sims["bad"].klippy.wait_for_console(r"failwatch: Print failure detected")
        assert "paused the print" in line
    # every log line names its printer; each printer has its own state file
    text = caplog.text
    assert "[bad] Print failure detected" in text
    assert "[blind] camera:" in text and "[blind] camera: working again" in text
    assert "[good] watching print good.gcode" in text
    assert "[good] Print failure" not in text and "[blind] Print failure" not in text
    for name in sims:
        assert (tmp_path / "failwatch" / f"state-{name}.json").exists()


async def test_refused_credentials_and_a_lost_moonraker_stay_local(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with printers("good", "locked", "gone") as sims:
        cfg = farm_config_for(sims, tmp_path / "failwatch.cfg")
        async with running_farm(cfg) as farm:
            await asyncio.gather(*(sim.start_print(f"{name}.gcode")
                                   for name, sim in sims.items()))
            await rising(sims, list(sims), 3)
            sims["locked"].predictor.mode = "401"
            await sims["gone"].mr.stop()  # Moonraker dies mid-print
            locked_before = len(sims["locked"].predictor.requests)
            gone_before = len(sims["gone"].predictor.requests)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await rising(sims, ["good"], 15, timeout=6)
            elapsed = loop.time() - t0
            # 15 frames at one per 0.2 s: the healthy printer kept its pace
            assert elapsed < 4.5, elapsed
            # the locked printer tried once and backs off for minutes; the other stopped
            assert len(sims["locked"].predictor.requests) <= locked_before + 1
            assert len(sims["gone"].predictor.requests) <= gone_before + 1
            assert not farm.daemons["gone"].can_watch()
            assert farm.restarts == {"good": 0, "locked": 0, "gone": 0}
        assert all(pauses(sim) == [] for sim in sims.values())
    text = caplog.text
    assert "[locked] predictor: the predictor refused the credentials (HTTP 401)" in text
    assert "[gone] moonraker: connection lost" in text
    assert "[good] predictor:" not in text and "[good] moonraker: connection lost" not in text


async def test_a_crashing_daemon_is_restarted_alone(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from failwatch_moonraker import daemon as daemon_module

    original = daemon_module.Daemon.run
    crashed: list[str] = []

    async def flaky_run(self: daemon_module.Daemon) -> None:
        if self.config.name == "crashy" and not crashed:
            crashed.append(self.config.name)
            raise RuntimeError("boom")
        await original(self)

    monkeypatch.setattr(daemon_module.Daemon, "run", flaky_run)
    async with printers("good", "crashy") as sims:
        cfg = farm_config_for(sims, tmp_path / "failwatch.cfg")
        farm = Farm(load_config(cfg), restart_delay=0.5)
        task = asyncio.create_task(farm.run())
        try:
            await asyncio.wait_for(farm.started.wait(), 10)
            await asyncio.gather(*(sim.start_print("x.gcode") for sim in sims.values()))
            await rising(sims, ["good", "crashy"], 5, timeout=20)
        finally:
            farm.stop()
            await asyncio.wait_for(task, 20)
    assert farm.restarts == {"good": 0, "crashy": 1}
    assert "[crashy] crashed; restarting in 0.5 s" in caplog.text
