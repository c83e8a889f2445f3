"""What a print failwatch paused needs to go on: its heaters, its fan, the idle timeout.

failwatch's actions may turn heaters off; the UI's own Resume button knows
nothing about that and resumes with a cold nozzle (``Extrude below minimum
temp``). So failwatch remembers the targets of every heater and the
part-cooling fan's speed just before it acts, and its Resume puts them back
and waits, as ``M109``/``M190``/``TEMPERATURE_WAIT`` do, before ``RESUME``.
While the print waits for the user, Klipper's idle timeout (600 s by
default) would turn the motors off and lose the position: failwatch raises
it and puts the printer's own value back when the print goes on or ends.

Pure code: the daemon queries the printer and sends the scripts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from failwatch_moonraker.printer.actions import respond_script

# Klipper's M109/M190 are done within 1 degree of the target (PID_SETTLE_DELTA).
TEMP_TOLERANCE = 1.0
# A heater still at its target but this far below it is still heating: wait for it too.
REHEAT_MARGIN = 5.0
DEFAULT_IDLE_TIMEOUT = 600.0  # klippy/extras/idle_timeout.py, when printer.cfg sets none
FAN = "fan"  # [fan]: the part-cooling fan, driven by M106/M107


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def heater_objects(available_heaters: Sequence[str] | None) -> list[str]:
    """The heater objects to remember (``heaters.available_heaters``, config names)."""
    names = [h for h in (available_heaters or ()) if isinstance(h, str) and h]
    return names or ["extruder", "heater_bed"]


def query_objects(heaters: Sequence[str]) -> dict[str, list[str]]:
    """``printer.objects.query`` objects for :func:`remember` and :func:`printer_idle_timeout`."""
    objects: dict[str, list[str]] = {h: ["target", "temperature"] for h in heaters}
    objects[FAN] = ["speed"]
    objects["configfile"] = ["settings"]
    return objects


def heater_label(name: str) -> str:
    """How the console names a heater: hotend, bed, or its own name."""
    if name == "extruder":
        return "hotend"
    if name.startswith("extruder") and name[len("extruder"):].isdigit():
        return f"hotend T{name[len('extruder'):]}"
    if name == "heater_bed":
        return "bed"
    return name.split()[-1]


def degrees(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def duration_text(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h".replace(".0 h", " h")


@dataclass
class PauseMemory:
    """The printer as it was just before failwatch acted on ``print_id``."""

    print_id: str | None
    targets: dict[str, float] = field(default_factory=dict)
    fan: float | None = None
    # The printer's own idle timeout, to put back; None while failwatch has not changed it.
    idle_timeout: float | None = None
    temperatures: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"print_id": self.print_id, "targets": dict(self.targets), "fan": self.fan,
                "idle_timeout": self.idle_timeout, "temperatures": dict(self.temperatures)}

    @classmethod
    def from_dict(cls, data: Any) -> PauseMemory | None:
        """A saved memory, or None if there is none or it is damaged."""
        if not isinstance(data, dict):
            return None
        def degrees_of(raw: Any) -> dict[str, float]:
            found = {}
            if isinstance(raw, dict):
                for name, value in raw.items():
                    number = _number(value)
                    if isinstance(name, str) and number is not None and -300 <= number <= 1000:
                        found[name] = number
            return found

        targets = {k: v for k, v in degrees_of(data.get("targets")).items() if v >= 0}
        fan = _number(data.get("fan"))
        idle = _number(data.get("idle_timeout"))
        print_id = data.get("print_id")
        return cls(print_id=print_id if isinstance(print_id, str) else None, targets=targets,
                   fan=fan if fan is not None and 0 <= fan <= 1 else None,
                   idle_timeout=idle if idle is not None and idle > 0 else None,
                   temperatures=degrees_of(data.get("temperatures")))


def remember(status: Mapping[str, Any], heaters: Sequence[str],
             print_id: str | None) -> PauseMemory:
    """The targets and the fan speed from a :func:`query_objects` answer."""
    targets: dict[str, float] = {}
    temperatures: dict[str, float] = {}
    for name in heaters:
        data = status.get(name)
        if not isinstance(data, dict):
            continue
        target, temperature = _number(data.get("target")), _number(data.get("temperature"))
        if target is not None:
            targets[name] = target
        if temperature is not None:
            temperatures[name] = temperature
    fan_data = status.get(FAN)
    fan = _number(fan_data.get("speed")) if isinstance(fan_data, dict) else None
    return PauseMemory(print_id=print_id, targets=targets, fan=fan, temperatures=temperatures)


def printer_idle_timeout(status: Mapping[str, Any]) -> float:
    """``configfile.settings.idle_timeout.timeout``, 600 s if printer.cfg sets none."""
    configfile = status.get("configfile")
    settings = configfile.get("settings") if isinstance(configfile, dict) else None
    section = settings.get("idle_timeout") if isinstance(settings, dict) else None
    value = _number(section.get("timeout")) if isinstance(section, dict) else None
    return value if value is not None and value > 0 else DEFAULT_IDLE_TIMEOUT


def idle_timeout_script(seconds: float) -> str:
    return f"SET_IDLE_TIMEOUT TIMEOUT={seconds:g}"


def idle_timeout_message(seconds: float) -> str:
    return (f"the printer holds the position for {duration_text(seconds)} (idle timeout), "
            "then Klipper turns the motors and heaters off and the print can no longer be "
            "resumed")


@dataclass(frozen=True)
class ResumePlan:
    """What failwatch's Resume does: heaters to bring back (in order), the fan, RESUME."""

    heaters: dict[str, float]
    fan: float | None = None

    @property
    def immediate(self) -> bool:
        return not self.heaters

    def message(self) -> str:
        if not self.heaters:
            return "resuming"
        what = ", ".join(f"{heater_label(h)} to {degrees(t)} °C" for h, t in self.heaters.items())
        return f"reheating {what}, then resuming"

    def script(self, message: str | None = None) -> str:
        """One script: Klipper runs it in order and stops at the first error, so a
        heater that cannot reach its target never leads to RESUME."""
        lines = [respond_script(message if message is not None else self.message())]
        for name, target in self.heaters.items():
            lines.append(f"SET_HEATER_TEMPERATURE HEATER={name.split()[-1]} "
                         f"TARGET={degrees(target)}")
        for name, target in self.heaters.items():
            sensor = f'"{name}"' if " " in name else name
            lines.append(f"TEMPERATURE_WAIT SENSOR={sensor} "
                         f"MINIMUM={degrees(target - TEMP_TOLERANCE)} "
                         f"MAXIMUM={degrees(target + TEMP_TOLERANCE)}")
        if self.fan is not None:
            lines.append(f"M106 S{round(self.fan * 255)}" if self.fan > 0 else "M107")
        lines.append("RESUME")
        return "\n".join(lines)


def plan_resume(memory: PauseMemory | None, status: Mapping[str, Any]) -> ResumePlan:
    """Compare the remembered printer with ``status`` (a :func:`query_objects` answer).

    A heater comes back if its target is not the remembered one, or if it was at its
    target when failwatch acted and has cooled well below it since; a heater nobody
    touched is left alone (one still heating up when failwatch acted goes on heating
    as before), so Resume is immediate when nothing was turned off.
    """
    if memory is None:
        return ResumePlan({})
    heaters: dict[str, float] = {}
    for name, target in memory.targets.items():
        if target <= 0:
            continue
        data = status.get(name)
        data = data if isinstance(data, dict) else {}
        now_target = _number(data.get("target"))
        temperature = _number(data.get("temperature"))
        before = memory.temperatures.get(name)
        cooled = temperature is not None and temperature < target - REHEAT_MARGIN and \
            (before is None or before >= target - REHEAT_MARGIN)
        if now_target != target or cooled:
            heaters[name] = target
    fan = None
    fan_data = status.get(FAN)
    speed = _number(fan_data.get("speed")) if isinstance(fan_data, dict) else None
    if memory.fan is not None and speed is not None and abs(speed - memory.fan) > 0.005:
        fan = memory.fan
    return ResumePlan(heaters, fan)


def busy_reason(status: Mapping[str, Any], heaters: Sequence[str]) -> str:
    """Why Klipper does not run a PAUSE yet, from the heaters it may be waiting for."""
    waiting = []
    for name in heaters:
        data = status.get(name)
        if not isinstance(data, dict):
            continue
        target, temperature = _number(data.get("target")), _number(data.get("temperature"))
        if target and temperature is not None and abs(temperature - target) > TEMP_TOLERANCE:
            waiting.append(f"{heater_label(name)} {degrees(temperature)}/{degrees(target)} °C")
    if waiting:
        return f"Klipper is busy heating ({', '.join(waiting)})"
    return "Klipper is busy (a G-code command is still running)"


__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "TEMP_TOLERANCE",
    "PauseMemory",
    "ResumePlan",
    "busy_reason",
    "duration_text",
    "heater_label",
    "heater_objects",
    "idle_timeout_message",
    "idle_timeout_script",
    "plan_resume",
    "printer_idle_timeout",
    "query_objects",
    "remember",
]
