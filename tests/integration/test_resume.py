"""A pause you can come back to: reheat on failwatch's Resume, the idle timeout while paused,
the dialog closed however the print leaves the pause.

Real Moonraker, emulated Klippy running config/failwatch_macros.cfg; each test presses what
the user presses and reads what the user reads (console, heater targets, print state).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from failwatch_moonraker.daemon import Daemon
from sim.daemon_config import config_for, seed_established_printer
from sim.harness import SimPrinter
from sim.klippy import GCodeCommand
from sim.macros import install_macros
from sim.waits import running_daemon, wait_until

pytestmark = pytest.mark.usefixtures("require_moonraker")

QUIET, BAD = 0.02, 3.0
STATE = "gcode_macro _FAILWATCH_STATE"
HEAT = "M104 S215\nM140 S60\nM106 S128"


def fails_after(quiet_frames: int) -> Callable[[int, str], float]:
    return lambda frame, print_id: QUIET if frame < quiet_frames else BAD


@contextlib.asynccontextmanager
async def daemon_for(printer: SimPrinter, cfg: Path) -> AsyncIterator[Daemon]:
    async with running_daemon(cfg) as daemon:
        await wait_until(lambda: printer.klippy.status[STATE]["online"] is True, 5, "online")
        yield daemon


@contextlib.asynccontextmanager
async def paused_by_failwatch(tmp_path: Path, **overrides: Any
                              ) -> AsyncIterator[tuple[SimPrinter, Daemon]]:
    """A hot printer printing with the macros included, paused by failwatch with its dialog."""
    async with SimPrinter() as printer:
        install_macros(printer.klippy)
        cfg = config_for(printer, tmp_path / "failwatch.cfg", **overrides)
        seed_established_printer(tmp_path)
        async with daemon_for(printer, cfg) as daemon:
            await printer.moonraker_call("printer.gcode.script", {"script": HEAT})
            printer.predictor.score = fails_after(5)
            await printer.start_print("benchy.gcode")
            await printer.klippy.wait_for_console(r"action:prompt_show", timeout=20)
            await printer.klippy.wait_for_print_state("paused", timeout=5)
            # a user takes longer than one status tick to press a button
            await wait_until(lambda: daemon.session.print_state == "paused", 5, "paused seen")
            yield printer, daemon


def spy_resume(printer: SimPrinter) -> list[dict[str, float]]:
    """The heaters as they are at the moment Klipper runs RESUME."""
    klippy = printer.klippy
    seen: list[dict[str, float]] = []
    original = klippy._cmd_resume

    def resume(cmd: GCodeCommand) -> None:
        seen.append({name: klippy.status[name]["temperature"]
                     for name in ("extruder", "heater_bed")})
        original(cmd)

    klippy._cmd_resume = resume  # type: ignore[method-assign]
    return seen


async def press(printer: SimPrinter, script: str) -> int:
    start = len(printer.klippy.console)
    await printer.moonraker_call("printer.gcode.script", {"script": script})
    return start


async def test_dialog_resume_reheats_waits_then_resumes(tmp_path: Path) -> None:
    async with paused_by_failwatch(tmp_path) as (printer, _):
        klippy = printer.klippy
        assert klippy.status["extruder"]["target"] == 0  # heaters_off ran
        assert klippy.status["heater_bed"]["target"] == 0
        await klippy.wait_for_tick(8)  # the nozzle cools down
        assert klippy.status["extruder"]["temperature"] < 200
        klippy.max_heat_rate = 60.0  # heaters take a couple of seconds, as on a printer
        at_resume = spy_resume(printer)
        lines_before = len(klippy.gcode_lines)
        start = await press(printer, "_FAILWATCH_RESUME")
        line = await klippy.wait_for_console(r"failwatch: reheating", start=start)
        assert line == "failwatch: reheating hotend to 215 °C, bed to 60 °C, then resuming"
        await klippy.wait_for_print_state("printing", timeout=30)
        sent = klippy.gcode_lines[lines_before:]
        order = [sent.index("SET_HEATER_TEMPERATURE HEATER=extruder TARGET=215"),
                 sent.index("SET_HEATER_TEMPERATURE HEATER=heater_bed TARGET=60"),
                 sent.index("TEMPERATURE_WAIT SENSOR=extruder MINIMUM=214 MAXIMUM=216"),
                 sent.index("TEMPERATURE_WAIT SENSOR=heater_bed MINIMUM=59 MAXIMUM=61"),
                 sent.index("RESUME")]
        assert order == sorted(order)
        # reached before RESUME, within Klipper's tolerance
        assert len(at_resume) == 1
        assert abs(at_resume[0]["extruder"] - 215) <= 1.0
        assert abs(at_resume[0]["heater_bed"] - 60) <= 1.0
        # the heaters' temperatures were reported while waiting, as M109 does
        assert any(c.startswith("B:") for c in klippy.console[start:])
        assert klippy.status["extruder"]["target"] == 215
        assert klippy.status["heater_bed"]["target"] == 60
        assert klippy.status["fan"]["speed"] == pytest.approx(128 / 255, abs=0.002)
        # and the idle timeout is the printer's own again
        await wait_until(lambda: klippy.idle_timeout == 600.0, 5, "idle timeout restored")


async def test_idle_timeout_is_raised_while_paused_and_restored_after_cancel(
        tmp_path: Path) -> None:
    async with paused_by_failwatch(tmp_path) as (printer, _):
        klippy = printer.klippy
        await wait_until(lambda: klippy.idle_timeout == 3600.0, 5, "idle timeout raised")
        assert "SET_IDLE_TIMEOUT TIMEOUT=3600" in klippy.gcode_lines
        line = next(c for c in klippy.console if "Print failure detected" in c)
        assert "The printer holds the position for 60 min (idle timeout)" in line
        # Cancel from the dialog: the heaters stay as they are (off), nothing reheats
        start = len(klippy.gcode_lines)
        await press(printer, "_FAILWATCH_CANCEL")
        await klippy.wait_for_print_state("cancelled")
        await wait_until(lambda: klippy.idle_timeout == 600.0, 5, "idle timeout restored")
        await asyncio.sleep(0.5)
        assert klippy.status["extruder"]["target"] == 0
        assert klippy.status["heater_bed"]["target"] == 0
        assert not [g for g in klippy.gcode_lines[start:]
                    if g.startswith(("SET_HEATER_TEMPERATURE", "TEMPERATURE_WAIT", "M10"))]
        assert "SET_IDLE_TIMEOUT TIMEOUT=600" in klippy.gcode_lines[start:]


async def test_ui_resume_closes_the_dialog_restores_the_idle_timeout_and_does_not_reheat(
        tmp_path: Path) -> None:
    async with paused_by_failwatch(tmp_path) as (printer, _):
        klippy = printer.klippy
        await wait_until(lambda: klippy.idle_timeout == 3600.0, 5, "idle timeout raised")
        start = len(klippy.console)
        lines = len(klippy.gcode_lines)
        await printer.moonraker_call("printer.print.resume")  # Mainsail's own Resume button
        await klippy.wait_for_print_state("printing")
        await klippy.wait_for_console(r"^// action:prompt_end$", start=start)
        await wait_until(lambda: klippy.idle_timeout == 600.0, 5, "idle timeout restored")
        assert klippy.status["extruder"]["target"] == 0  # the UI's Resume does not reheat
        assert not [g for g in klippy.gcode_lines[lines:] if "TARGET=215" in g]


async def test_console_cancel_closes_the_dialog(tmp_path: Path) -> None:
    async with paused_by_failwatch(tmp_path) as (printer, _):
        start = len(printer.klippy.console)
        await printer.moonraker_call("printer.gcode.script", {"script": "CANCEL_PRINT"})
        await printer.klippy.wait_for_print_state("cancelled")
        await printer.klippy.wait_for_console(r"^// action:prompt_end$", start=start)


async def test_resume_is_immediate_when_no_heater_was_turned_off(tmp_path: Path) -> None:
    async with paused_by_failwatch(tmp_path, actions={"on_failure": "pause, notify"}) as (
            printer, _):
        klippy = printer.klippy
        lines = len(klippy.gcode_lines)
        start = await press(printer, "FAILWATCH_RESUME")
        line = await klippy.wait_for_console(r"^failwatch: ", start=start)
        assert line == "failwatch: resuming"
        await klippy.wait_for_print_state("printing")
        sent = klippy.gcode_lines[lines:]
        assert "RESUME" in sent
        assert not [g for g in sent if g.startswith(("SET_HEATER", "TEMPERATURE_WAIT"))]
        start = await press(printer, "FAILWATCH_RESUME")
        line = await klippy.wait_for_console(r"^failwatch: ", start=start)
        assert line == "failwatch: the print is not paused: nothing to resume"


async def test_resume_ignore_reheats_and_stops_watching(tmp_path: Path) -> None:
    async with paused_by_failwatch(tmp_path) as (printer, daemon):
        klippy = printer.klippy
        start = await press(printer, "_FAILWATCH_RESUME_IGNORE")
        line = await klippy.wait_for_console(r"^failwatch: ", start=start)
        assert line == ("failwatch: not watching this print (000001) any more, reheating "
                        "hotend to 215 °C, bed to 60 °C, then resuming")
        await klippy.wait_for_print_state("printing", timeout=30)
        assert daemon.session.ignored
        assert abs(klippy.status["extruder"]["temperature"] - 215) <= 1.0


async def test_no_idle_timeout_change_with_zero(tmp_path: Path) -> None:
    async with paused_by_failwatch(
            tmp_path, actions={"on_failure": "pause, notify", "paused_idle_timeout": 0}) as (
            printer, _):
        await asyncio.sleep(0.5)
        assert not [g for g in printer.klippy.gcode_lines if g.startswith("SET_IDLE_TIMEOUT")]
        assert printer.klippy.idle_timeout == 600.0


async def test_failwatch_restarted_while_paused_still_reheats(tmp_path: Path) -> None:
    async with paused_by_failwatch(tmp_path) as (printer, daemon):
        klippy = printer.klippy
        await wait_until(lambda: klippy.idle_timeout == 3600.0, 5, "idle timeout raised")
        daemon.stop()
        await wait_until(lambda: klippy.status[STATE]["online"] is False, 10, "offline")
        async with daemon_for(printer, tmp_path / "failwatch.cfg"):
            start = await press(printer, "FAILWATCH_RESUME")
            line = await klippy.wait_for_console(r"^failwatch: ", start=start)
            assert line == "failwatch: reheating hotend to 215 °C, bed to 60 °C, then resuming"
            await klippy.wait_for_print_state("printing", timeout=30)
            await wait_until(lambda: klippy.idle_timeout == 600.0, 5, "idle timeout restored")


async def test_an_ignored_print_is_said_to_be_ignored_after_a_restart(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with SimPrinter() as printer:
        install_macros(printer.klippy)
        cfg = config_for(printer, tmp_path / "failwatch.cfg")
        async with daemon_for(printer, cfg):
            job = await printer.start_print("benchy.gcode")
            assert job is not None
            await printer.predictor.wait_for_requests(2, timeout=10)
            start = await press(printer, "FAILWATCH_IGNORE_PRINT")
            await printer.klippy.wait_for_console(r"not watching this print", start=start)
        caplog.clear()
        async with daemon_for(printer, cfg) as daemon:
            await wait_until(lambda: daemon.print_verified, 10, "print resolved")
    text = caplog.text
    assert (f"print benchy.gcode (job {job['job_id']}) is ignored (FAILWATCH_IGNORE_PRINT): "
            "not watching it; the next print is watched again") in text
    assert "again; its statistics carry on" not in text


async def test_heaters_off_delay_never_fires_into_a_resume(tmp_path: Path) -> None:
    """The delay ends while failwatch's Resume waits for a heater: nothing turns off after."""
    delay = 6.0
    async with paused_by_failwatch(
            tmp_path, actions={"on_failure": "pause, extruder_off, notify",
                               "heaters_off_delay": delay}) as (printer, _):
        loop = asyncio.get_running_loop()
        paused_at = loop.time()
        klippy = printer.klippy
        await press(printer, "M140 S0")  # the user turned the bed off by hand
        await klippy.wait_for_tick(6)  # and it cooled
        klippy.max_heat_rate = 0.0  # the bed is slow: the reheat outlasts heaters_off_delay
        start = await press(printer, "FAILWATCH_RESUME")
        line = await klippy.wait_for_console(r"^failwatch: ", start=start)
        assert line == "failwatch: reheating bed to 60 °C, then resuming"
        await asyncio.sleep(max(0.0, paused_at + delay + 1.0 - loop.time()))
        assert klippy.status["print_stats"]["state"] == "paused"  # still waiting for the bed
        klippy.max_heat_rate = None
        await klippy.wait_for_print_state("printing", timeout=30)
        await asyncio.sleep(1.0)
        assert klippy.status["extruder"]["target"] == 215
        assert "SET_HEATER_TEMPERATURE HEATER=extruder TARGET=0" not in klippy.gcode_lines
        assert not [c for c in klippy.console if "still paused after" in c]
