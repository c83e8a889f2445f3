"""A failure while Klipper is busy heating: the PAUSE waits in line, the frames go on.

Real Klipper holds its G-code lock during M109/M190/TEMPERATURE_WAIT; a PAUSE sent then
runs when the wait ends. The emulated Klippy does the same (its heater is held back with
``max_heat_rate``), behind the real Moonraker.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from sim.daemon_config import config_for, seed_established_printer
from sim.harness import SimPrinter
from sim.macros import install_macros
from sim.waits import running_daemon, wait_until

pytestmark = pytest.mark.usefixtures("require_moonraker")

QUIET, BAD = 0.02, 3.0


async def test_pause_queued_behind_m109_is_waited_for_and_frames_go_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with SimPrinter() as printer:
        klippy = printer.klippy
        install_macros(klippy)
        seed_established_printer(tmp_path)
        cfg = config_for(printer, tmp_path / "failwatch.cfg")
        async with running_daemon(cfg) as daemon:
            await printer.start_print("benchy.gcode")
            klippy.max_heat_rate = 0.0  # the hotend is slow: M109 holds the lock meanwhile
            heating = asyncio.create_task(
                printer.moonraker_call("printer.gcode.script", {"script": "M109 S215"}))
            try:
                await klippy.wait_for_gcode(r"^M109 S215$", timeout=5)
                printer.predictor.score = lambda frame, pid: BAD if frame >= 6 else QUIET
                await wait_until(lambda: "pause requested;" in caplog.text, 20,
                                 "the queued pause is noticed")
                assert ("pause requested; Klipper is busy heating (hotend 25/215 °C), it "
                        "pauses when the wait ends") in caplog.text
                # the PAUSE is in line: the print goes on, and so does the watching
                seen = len(printer.predictor.requests)
                await printer.predictor.wait_for_requests(seen + 5, timeout=10)
                assert klippy.status["print_stats"]["state"] == "printing"
                assert "PAUSE" not in klippy.gcode_lines
                assert daemon.frames >= seen + 5
                klippy.max_heat_rate = None  # the hotend gets there; the wait ends
                await asyncio.wait_for(heating, 20)
            finally:
                klippy.max_heat_rate = None
                if not heating.done():
                    heating.cancel()
            await klippy.wait_for_print_state("paused", timeout=10)
            line = await klippy.wait_for_console(r"failwatch: Print failure detected", 10)
            await klippy.wait_for_console(r"action:prompt_show", timeout=10)
        # Klipper ran M109 to its end, then the PAUSE that was waiting, then the rest
        lines = klippy.gcode_lines
        assert lines.index("M109 S215") < lines.index("PAUSE") < lines.index("TURN_OFF_HEATERS")
        assert lines.count("PAUSE") == 1
        assert "paused the print, turned all heaters off." in line
        assert ("The pause was requested while Klipper was busy heating (hotend 25/215 °C) "
                "and ran when the wait ended, ") in line
        assert "could not pause" not in " ".join(klippy.console)
    assert "could not pause" not in caplog.text
    assert "paused after waiting " in caplog.text
    assert caplog.text.index("pause requested;") < caplog.text.index("paused after waiting")
