"""What the actions send to Klipper, as text a user would see on the console."""

from __future__ import annotations

import asyncio
from typing import Any

from failwatch_moonraker.printer.actions import (
    ActionRunner,
    describe,
    heater_script,
    respond_script,
    split_delayed,
)


def test_console_message_is_safe_for_klippers_parser() -> None:
    line = respond_script('p=1.2; "spaghetti" #1 * 2\nnext')
    assert line == "RESPOND PREFIX=\"failwatch:\" MSG=\"p=1.2, 'spaghetti' no.1 x 2 next\""
    assert respond_script("bad", error=True) == 'RESPOND PREFIX="!! failwatch:" MSG="bad"'


def test_heater_scripts() -> None:
    heaters = ["extruder", "extruder1", "heater_bed", "heater_generic chamber"]
    assert heater_script("heaters_off", heaters) == "TURN_OFF_HEATERS"
    assert heater_script("extruder_off", heaters) == (
        "SET_HEATER_TEMPERATURE HEATER=extruder TARGET=0\n"
        "SET_HEATER_TEMPERATURE HEATER=extruder1 TARGET=0")
    assert heater_script("bed_off", heaters) == "SET_HEATER_TEMPERATURE HEATER=heater_bed TARGET=0"
    assert heater_script("bed_off", ["extruder"]) == "M140 S0"  # no heater_bed object
    assert heater_script("extruder_off", None) == "M104 S0"


def test_heaters_wait_for_the_delay_and_motion_stops_first() -> None:
    assert split_delayed(["notify", "heaters_off", "pause"], 0) == (
        ["pause", "heaters_off", "notify"], [])
    assert split_delayed(["notify", "bed_off", "pause", "gcode"], 60) == (
        ["pause", "gcode", "notify"], ["bed_off"])


def test_describe() -> None:
    assert describe(["pause", "heaters_off", "notify"]) == (
        "paused the print, turned all heaters off")
    assert describe(["pause"], 120, ["bed_off"]) == (
        "paused the print, will turn the bed off in 120 s unless resumed")


class Recorder:
    def __init__(self, fail: str = "") -> None:
        self.calls: list[tuple[str, Any]] = []
        self.fail = fail

    async def call(self, method: str, params: dict[str, object] | None = None,
                   timeout: float = 10.0) -> object:
        self.calls.append((method, params))
        if self.fail and self.fail == method:
            raise RuntimeError("Klippy Host not connected")
        return "ok"


def test_runner_order_and_one_failure_does_not_stop_the_rest() -> None:
    rec = Recorder(fail="printer.print.pause")
    runner = ActionRunner(rec, failure_gcode="M300")
    results = asyncio.run(runner.run(["notify", "gcode", "heaters_off", "pause"], "hello"))
    assert [r.action for r in results] == ["pause", "heaters_off", "gcode", "notify"]
    assert [r.ok for r in results] == [False, True, True, True]
    assert results[0].error == "Klippy Host not connected"
    assert rec.calls == [
        ("printer.print.pause", None),
        ("printer.gcode.script", {"script": "TURN_OFF_HEATERS"}),
        ("printer.gcode.script", {"script": "M300"}),
        ("printer.gcode.script", {"script": 'RESPOND PREFIX="failwatch:" MSG="hello"'}),
    ]
