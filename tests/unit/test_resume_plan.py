"""Reheat on resume and the idle timeout while paused: the pure decisions."""

from __future__ import annotations

import math

from failwatch_moonraker.config import load_config
from failwatch_moonraker.printer.control import parse_command
from failwatch_moonraker.printer.resume import (
    PauseMemory,
    busy_reason,
    duration_text,
    heater_label,
    idle_timeout_message,
    plan_resume,
    printer_idle_timeout,
    query_objects,
    remember,
)

HEATERS = ["extruder", "heater_bed"]


def printer(ext: tuple[float, float], bed: tuple[float, float],
            fan: float | None = 0.0) -> dict[str, dict[str, object]]:
    status: dict[str, dict[str, object]] = {
        "extruder": {"temperature": ext[0], "target": ext[1]},
        "heater_bed": {"temperature": bed[0], "target": bed[1]},
    }
    if fan is not None:
        status["fan"] = {"speed": fan}
    return status


def test_remember_takes_every_heater_and_the_fan() -> None:
    memory = remember(printer((214.6, 215.0), (60.1, 60.0), fan=0.5), HEATERS, "000001")
    assert memory.targets == {"extruder": 215.0, "heater_bed": 60.0}
    assert memory.fan == 0.5 and memory.print_id == "000001"
    assert memory.temperatures == {"extruder": 214.6, "heater_bed": 60.1}
    assert query_objects(HEATERS) == {"extruder": ["target", "temperature"],
                                      "heater_bed": ["target", "temperature"],
                                      "fan": ["speed"], "configfile": ["settings"]}


def test_heaters_turned_off_come_back_and_are_waited_for_then_resume() -> None:
    memory = PauseMemory("1", {"extruder": 215.0, "heater_bed": 60.0}, fan=0.5)
    plan = plan_resume(memory, printer((120.0, 0.0), (45.0, 0.0), fan=0.0))
    assert not plan.immediate
    assert plan.message() == "reheating hotend to 215 °C, bed to 60 °C, then resuming"
    assert plan.script().split("\n") == [
        'RESPOND PREFIX="failwatch:" MSG="reheating hotend to 215 °C, bed to 60 °C, '
        'then resuming"',
        "SET_HEATER_TEMPERATURE HEATER=extruder TARGET=215",
        "SET_HEATER_TEMPERATURE HEATER=heater_bed TARGET=60",
        "TEMPERATURE_WAIT SENSOR=extruder MINIMUM=214 MAXIMUM=216",
        "TEMPERATURE_WAIT SENSOR=heater_bed MINIMUM=59 MAXIMUM=61",
        "M106 S128",
        "RESUME",
    ]


def test_nothing_turned_off_resumes_at_once() -> None:
    memory = PauseMemory("1", {"extruder": 215.0, "heater_bed": 60.0}, fan=0.0)
    plan = plan_resume(memory, printer((214.2, 215.0), (58.5, 60.0), fan=0.0))
    assert plan.immediate and plan.message() == "resuming"
    assert plan.script().split("\n") == ['RESPOND PREFIX="failwatch:" MSG="resuming"', "RESUME"]
    # no memory at all (failwatch restarted without a state file): plain RESUME
    assert plan_resume(None, printer((25, 0), (25, 0))).script().endswith("\nRESUME")


def test_only_what_changed_comes_back() -> None:
    # heaters_off_delay turned the bed off only; the hotend was never touched
    memory = PauseMemory("1", {"extruder": 215.0, "heater_bed": 60.0}, fan=None)
    plan = plan_resume(memory, printer((215.0, 215.0), (30.0, 0.0), fan=1.0))
    assert plan.heaters == {"heater_bed": 60.0} and plan.fan is None
    assert plan.message() == "reheating bed to 60 °C, then resuming"
    # a target set back by hand but still far below: waited for
    plan = plan_resume(memory, printer((150.0, 215.0), (60.0, 60.0)))
    assert plan.heaters == {"extruder": 215.0}
    # ... unless it was still heating up when failwatch acted: it goes on as before
    heating = PauseMemory("1", {"extruder": 215.0}, temperatures={"extruder": 140.0})
    assert plan_resume(heating, printer((150.0, 215.0), (60.0, 60.0))).immediate
    cooled = PauseMemory("1", {"extruder": 215.0}, temperatures={"extruder": 214.0})
    assert plan_resume(cooled, printer((150.0, 215.0), (60.0, 60.0))).heaters == \
        {"extruder": 215.0}
    # a heater that was off before failwatch acted stays off
    memory = PauseMemory("1", {"extruder": 215.0, "heater_bed": 0.0})
    assert plan_resume(memory, printer((100, 0), (25, 0))).heaters == {"extruder": 215.0}


def test_other_heaters_are_named_and_quoted() -> None:
    memory = PauseMemory("1", {"extruder1": 240.0, "heater_generic chamber": 45.5})
    status = {"extruder1": {"temperature": 30.0, "target": 0.0},
              "heater_generic chamber": {"temperature": 20.0, "target": 0.0}}
    plan = plan_resume(memory, status)
    assert plan.message() == "reheating hotend T1 to 240 °C, chamber to 45.5 °C, then resuming"
    lines = plan.script().split("\n")
    assert "SET_HEATER_TEMPERATURE HEATER=chamber TARGET=45.5" in lines
    assert ('TEMPERATURE_WAIT SENSOR="heater_generic chamber" MINIMUM=44.5 MAXIMUM=46.5'
            in lines)
    assert heater_label("heater_bed") == "bed" and heater_label("extruder") == "hotend"


def test_fan_off_is_m107() -> None:
    memory = PauseMemory("1", {}, fan=0.0)
    assert plan_resume(memory, {"fan": {"speed": 1.0}}).script().split("\n")[-2:] == \
        ["M107", "RESUME"]


def test_printer_idle_timeout_from_configfile_settings() -> None:
    def status(settings: object) -> dict[str, object]:
        return {"configfile": {"settings": settings}}

    assert printer_idle_timeout(status({"idle_timeout": {"timeout": 1800.0}})) == 1800.0
    assert printer_idle_timeout(status({})) == 600.0  # no [idle_timeout] section
    assert printer_idle_timeout({}) == 600.0
    assert printer_idle_timeout(status({"idle_timeout": {"timeout": "x"}})) == 600.0
    assert printer_idle_timeout(status({"idle_timeout": {"timeout": math.nan}})) == 600.0
    assert idle_timeout_message(3600).startswith(
        "the printer holds the position for 60 min (idle timeout)")
    assert duration_text(90) == "90 s" and duration_text(14400) == "4 h"


def test_memory_round_trip_and_damage() -> None:
    memory = PauseMemory("000007", {"extruder": 215.0}, fan=0.25, idle_timeout=600.0,
                         temperatures={"extruder": 210.5})
    assert PauseMemory.from_dict(memory.to_dict()) == memory
    assert PauseMemory.from_dict("junk") is None
    damaged = PauseMemory.from_dict({"print_id": 3, "targets": {"extruder": "hot", "b": 1e9,
                                                                "heater_bed": 60},
                                     "fan": 7, "idle_timeout": -1})
    assert damaged == PauseMemory(None, {"heater_bed": 60.0}, None, None, {})


def test_busy_reason_names_the_heater_being_waited_for() -> None:
    assert busy_reason(printer((150.04, 215.0), (60.0, 60.0)), HEATERS) == \
        "Klipper is busy heating (hotend 150/215 °C)"
    assert busy_reason(printer((215.0, 215.0), (60.0, 60.0)), HEATERS) == \
        "Klipper is busy (a G-code command is still running)"


def test_resume_commands_are_accepted() -> None:
    assert parse_command({"cmd": "resume", "value": ""}).name == "resume"
    assert parse_command({"cmd": "RESUME_IGNORE"}).name == "resume_ignore"


def test_paused_idle_timeout_option(tmp_path: object) -> None:
    from pathlib import Path

    import pytest

    from failwatch_moonraker.config import ConfigError

    folder = Path(str(tmp_path))
    base = ("[moonraker]\nurl: ws://127.0.0.1:7125/websocket\n[predictor]\nserial_no: s\n"
            "access_token: t\n")
    path = folder / "failwatch.cfg"
    path.write_text(base)
    assert load_config(path).actions.paused_idle_timeout == 3600.0
    path.write_text(base + "[actions]\npaused_idle_timeout: 0\n")
    assert load_config(path).actions.paused_idle_timeout == 0.0
    path.write_text(base + "[actions]\npaused_idle_timeout: -5\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: [actions] paused_idle_timeout: must be a number >= 0, " \
        "got '-5'"
