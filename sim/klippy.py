"""An emulated Klippy speaking Moonraker's unix-socket protocol.

The real Moonraker connects to this exactly as it would to Klipper: messages are JSON
objects terminated by ``0x03``, requests carry an ``id``, pushes carry the ``method``
of the subscriber's ``response_template``.  The printer model is deliberately small
(a print is a timer, heaters drift toward their targets) but every state change a
failure-watching client relies on goes through the same objects and the same pushes
as with Klipper, so the daemon under test cannot tell the difference.

Like Klipper, M109/M190/TEMPERATURE_WAIT hold the G-code lock until the heater gets
there (printing the temperatures every second), so a PAUSE or RESPOND sent meanwhile
waits in line; ``max_heat_rate`` makes a heater slow enough for a test to see it.

Everything runs on the caller's asyncio loop; there are no threads.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import copy
import inspect
import json
import logging
import math
import os
import re
import shlex
import socket
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["EmulatedKlippy", "GCodeCommand", "KlippyError", "parse_gcode_line"]

log = logging.getLogger(__name__)

T = TypeVar("T")

ETX = b"\x03"
TICK = 0.25  # Klipper pushes subscribed status changes at most every 250 ms
AMBIENT = 25.0
READ_LIMIT = 20 * 1024 * 1024  # Moonraker's own limit; scripts can be large
SOFTWARE_VERSION = "v0.12.0-sim"

MSG_STARTUP = "Printer is not ready"
MSG_READY = "Printer is ready"

CORE_ENDPOINTS = (
    "list_endpoints",
    "info",
    "emergency_stop",
    "register_remote_method",
    "objects/list",
    "objects/query",
    "objects/subscribe",
    "gcode/help",
    "gcode/script",
    "gcode/restart",
    "gcode/firmware_restart",
    "gcode/subscribe_output",
)
PAUSE_RESUME_ENDPOINTS = ("pause_resume/pause", "pause_resume/resume", "pause_resume/cancel")

# Commands Klipper accepts while not ready (klippy/gcode.py keeps the same list).
ALLOWED_NOT_READY = frozenset(
    {"RESTART", "FIRMWARE_RESTART", "STATUS", "HELP", "ECHO", "M110", "M112", "M115", "M105"}
)
# Commands whose whole argument text is the parameter (no KEY=VALUE parsing).
RAW_ARG_COMMANDS = frozenset({"M117", "M118", "ECHO"})
# Motion / housekeeping commands accepted silently so realistic scripts run.
NOOP_COMMANDS = frozenset(
    {"G0", "G1", "G4", "G90", "G91", "G92", "M82", "M83", "M110",
     "M220", "M221", "M400", "SAVE_GCODE_STATE", "RESTORE_GCODE_STATE"}
)
RESPOND_PREFIXES = {"echo": "echo:", "echo_no_space": "echo:", "command": "//", "error": "!!"}
HEATERS = {"extruder": 300.0, "heater_bed": 130.0}  # name -> max_temp
TEMP_TOLERANCE = 1.0  # M109/M190 are done once within this many degrees (PID_SETTLE_DELTA)
GCODE_IDS = {"extruder": "T0", "heater_bed": "B"}  # Klipper's M105 names
WAIT_REPORT_EVERY = 1.0  # M109/M190/TEMPERATURE_WAIT print the temperatures every second

_TRADITIONAL_RE = re.compile(r"[A-Z]\d+(?:\.\d+)?")
_ARG_END_RE = re.compile(r"[#*;]")

Handler = Callable[["_Connection", dict[str, Any]], Awaitable[dict[str, Any]]]
MacroAction = Callable[[dict[str, str]], "Awaitable[None] | None"]


class KlippyError(Exception):
    """An error Klipper would report; ``str(err)`` is the exact message."""


class RemoteMethodNotRegistered(KlippyError):
    """``action_call_remote_method`` found no connection that registered the method."""


class GCodeCommand:
    """One parsed G-code line: upper-cased command name plus its parameters."""

    __slots__ = ("line", "name", "params", "raw_args")

    def __init__(self, line: str, name: str, params: dict[str, str], raw_args: str) -> None:
        self.line = line
        self.name = name
        self.params = params
        self.raw_args = raw_args

    def get(self, key: str, default: str | None = None) -> str:
        """A parameter as text; missing and no default is Klipper's "missing" error."""
        if key in self.params:
            return self.params[key]
        if default is None:
            raise KlippyError(f"Error on '{self.line}': missing {key}")
        return default

    def get_float(
        self,
        key: str,
        default: float | None = None,
        minval: float | None = None,
        maxval: float | None = None,
    ) -> float:
        """A numeric parameter with Klipper-like range and parse errors."""
        if key not in self.params:
            if default is None:
                raise KlippyError(f"Error on '{self.line}': missing {key}")
            return default
        text = self.params[key]
        try:
            value = float(text)
        except ValueError:
            raise KlippyError(f"Unable to parse '{text}' as a float") from None
        if minval is not None and value < minval:
            raise KlippyError(f"Error on '{self.line}': {key} must have minimum of {minval}")
        if maxval is not None and value > maxval:
            raise KlippyError(f"Error on '{self.line}': {key} must have maximum of {maxval}")
        return value


def parse_gcode_line(line: str) -> GCodeCommand | None:
    """Parse one line the way Klipper does; ``None`` for blank/comment-only lines.

    Traditional commands (``M104 S200``) take a letter per parameter, extended ones
    (``RESPOND MSG="a b"``) take shell-quoted ``KEY=VALUE`` words, and M117/M118/ECHO
    take their whole argument text.  Malformed extended arguments raise KlippyError.
    """
    text = line.strip()
    cut = text.find(";")
    if cut >= 0:
        text = text[:cut].strip()
    if not text:
        return None
    parts = text.split(None, 1)
    first = parts[0]
    if re.fullmatch(r"N\d+", first, re.IGNORECASE) and len(parts) > 1:
        parts = parts[1].split(None, 1)  # drop a line number
        first = parts[0]
    name = first.upper()
    rest = parts[1].strip() if len(parts) > 1 else ""
    if name in RAW_ARG_COMMANDS:
        return GCodeCommand(text, name, {}, rest)
    if _TRADITIONAL_RE.fullmatch(name):
        params: dict[str, str] = {}
        for word in rest.upper().split():
            params[word[0]] = word[1:]
        return GCodeCommand(text, name, params, rest)
    end = _ARG_END_RE.search(rest)
    args = rest[: end.start()] if end else rest
    try:
        words = shlex.split(args)
        pairs = [word.split("=", 1) for word in words]
        params = {key.upper(): value for key, value in pairs}
    except ValueError:
        raise KlippyError(f"Malformed command '{text}'") from None
    return GCodeCommand(text, name, params, rest)


class _Connection:
    """One client of the Klippy socket with its own subscriptions and registrations."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.closed = False
        self.sub_objects: dict[str, list[str] | None] = {}
        self.sub_template: dict[str, Any] | None = None
        self.sub_sent: dict[str, dict[str, Any]] = {}
        self.output_template: dict[str, Any] | None = None
        self.remote_methods: dict[str, dict[str, Any]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.main_task: asyncio.Task[Any] | None = None

    def send(self, message: dict[str, Any]) -> None:
        """Queue one framed message; a broken pipe just closes the connection."""
        if self.closed:
            return
        try:
            self.writer.write(json.dumps(message).encode() + ETX)
        except Exception:  # noqa: BLE001 - a dead peer must not break the emulator
            self.close()

    def push(self, template: dict[str, Any], params: dict[str, Any]) -> None:
        """Send a push built from a response_template, as Klipper does."""
        message = dict(template)
        message["params"] = params
        self.send(message)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for task in list(self.tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            self.writer.close()


class EmulatedKlippy:
    """A Klippy host process emulated on a unix socket, good enough for the real Moonraker.

    ``status`` holds the printer objects exactly as ``objects/query`` reports them;
    ``gcode_lines`` and ``console`` record what the printer was told and what it said,
    so tests can assert on the printer side of the conversation.
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        *,
        gcodes_path: str | os.PathLike[str],
        config_file: str | os.PathLike[str],
        klipper_path: str | os.PathLike[str] | None = None,
        print_time: float = 3600.0,
        macros: Iterable[str] | Mapping[str, Mapping[str, Any]] = (),
        log_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.socket_path = Path(socket_path)
        self.gcodes_path = Path(gcodes_path)
        self.config_file = Path(config_file)
        # Moonraker registers <klipper_path>/config and /docs as file roots.
        self.klipper_path = (
            Path(klipper_path) if klipper_path is not None
            else self.config_file.parent.parent / "klipper"
        )
        self.log_file = (
            Path(log_file) if log_file is not None
            else self.config_file.parent.parent / "logs" / "klippy.log"
        )
        self.print_time = float(print_time)
        self.filament_total = 5000.0  # mm extruded by a whole print
        self.heat_fraction = 0.4  # share of the gap to the target closed per tick
        self.cool_fraction = 0.15
        # A heater's power limits how fast it heats (degrees per second); None = no limit.
        # A small value makes M109/M190 hold the G-code lock for a while, as on a printer.
        self.max_heat_rate: float | None = None
        self.restart_down_time = 0.3  # how long a G-code RESTART keeps the socket away
        self.startup_delay = 0.2

        self._macro_vars: dict[str, dict[str, Any]] = {}
        self.macro_actions: dict[str, MacroAction] = {}
        if isinstance(macros, Mapping):
            for name, variables in macros.items():
                self._macro_vars[name.upper()] = dict(variables or {})
        else:
            for name in macros:
                self._macro_vars[name.upper()] = {}

        self.state = "startup"
        self.state_message = MSG_STARTUP
        self.status: dict[str, dict[str, Any]] = {}
        self.gcode_lines: list[str] = []
        self.console: list[str] = []
        # (endpoint, params) of the latest requests received, for handshake assertions
        self.requests: deque[tuple[str, dict[str, Any]]] = deque(maxlen=10_000)

        # Status ticks so far and print_stats.state as of the latest one: a state that
        # changes and changes back within one tick is never seen by subscribers, as with
        # Klipper, so callers that need every transition seen wait for a tick.
        self.ticks = 0
        self.pushed_print_state = "standby"
        self._conns: set[_Connection] = set()
        self._server: asyncio.AbstractServer | None = None
        self._tick_task: asyncio.Task[None] | None = None
        self._ready_task: asyncio.Task[None] | None = None
        self._bg_tasks: set[asyncio.Task[Any]] = set()
        self._gcode_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._running = False
        self._print_elapsed = 0.0
        self._sd_paused = False
        self._idle_timeout = 600.0
        self._ready_since = time.monotonic()
        self._printing_since = 0.0
        self._idle_gcode_running = False
        self._reset_model(keep_temperatures=False)

    # ------------------------------------------------------------------ lifecycle

    @property
    def connections(self) -> int:
        """Number of clients currently connected to the socket."""
        return len(self._conns)

    @property
    def registered_methods(self) -> set[str]:
        """Remote methods some live connection has registered."""
        return {name for conn in self._conns for name in conn.remote_methods}

    async def start(
        self, *, startup_delay: float = 0.2, state: str = "ready", message: str = ""
    ) -> None:
        """Listen on the socket in ``startup``; switch to ``state`` after ``startup_delay``.

        ``state="error"`` emulates a Klipper whose config failed to load.
        """
        if self._running:
            raise RuntimeError("EmulatedKlippy already started")
        self.startup_delay = startup_delay
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self.gcodes_path.mkdir(parents=True, exist_ok=True)
        for sub in ("config", "docs"):
            (self.klipper_path / sub).mkdir(parents=True, exist_ok=True)
        if not self.config_file.exists():
            self.config_file.parent.mkdir(parents=True, exist_ok=True)
            self.config_file.write_text(self._printer_cfg_text())
        self._running = True
        self._tick_task = asyncio.create_task(self._tick_loop(), name="klippy-tick")
        await self._listen(startup_delay, state, message)

    async def stop(self) -> None:
        """Close every connection, stop all timers and remove the socket file."""
        if not self._running:
            return
        self._running = False
        tasks = [t for t in (self._tick_task, self._ready_task) if t is not None]
        tasks += list(self._bg_tasks)
        current = asyncio.current_task()
        for task in tasks:
            if task is not current:
                task.cancel()
        await self._go_down()
        for task in tasks:
            if task is not current:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(task, 2.0)
        self._tick_task = self._ready_task = None
        self._bg_tasks.clear()

    async def restart(
        self, *, down_time: float = 0.5, state: str = "ready", message: str = ""
    ) -> None:
        """Emulate RESTART or a crash: drop everything, come back in startup, then ``state``."""
        if not self._running:
            raise RuntimeError("EmulatedKlippy is not running")
        await self._go_down()
        await asyncio.sleep(down_time)
        if not self._running:
            return
        self._reset_model(keep_temperatures=True)
        await self._listen(self.startup_delay, state, message)

    def set_state(self, state: str, message: str = "") -> None:
        """Force startup/ready/error/shutdown; ``shutdown`` has Klipper's side effects."""
        if state == "shutdown":
            self._shutdown(message or "Shutdown due to emulator request")
            return
        defaults = {"startup": MSG_STARTUP, "ready": MSG_READY, "error": "Emulated error"}
        if state not in defaults:
            raise ValueError(f"unknown Klippy state {state!r}")
        self._set_state(state, message or defaults[state])

    async def _listen(self, startup_delay: float, state: str, message: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._set_state("startup", MSG_STARTUP)
        self._server = await asyncio.start_unix_server(
            self._on_client, path=str(self.socket_path), limit=READ_LIMIT
        )
        self._ready_task = asyncio.create_task(
            self._finish_startup(startup_delay, state, message), name="klippy-startup"
        )

    async def _finish_startup(self, delay: float, state: str, message: str) -> None:
        await asyncio.sleep(delay)
        if self.state == "startup":
            self.set_state(state, message)

    async def _go_down(self) -> None:
        """Stop listening and drop every client, as a dying Klippy process would."""
        if self._ready_task is not None and self._ready_task is not asyncio.current_task():
            self._ready_task.cancel()
        self._ready_task = None
        server, self._server = self._server, None
        if server is not None:
            server.close()
        conns = list(self._conns)
        for conn in conns:
            self._drop(conn)
        writers = [c.writer.wait_closed() for c in conns]
        if writers:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*writers, return_exceptions=True), timeout=2.0
                )
        if server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), timeout=2.0)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._notify()

    def _spawn(self, coro: Awaitable[T], name: str) -> asyncio.Task[T]:
        task: asyncio.Task[T] = asyncio.ensure_future(coro)  # type: ignore[assignment]
        task.set_name(name)
        self._bg_tasks.add(task)
        task.add_done_callback(self._bg_tasks.discard)
        return task

    # ------------------------------------------------------------------ model

    @property
    def idle_timeout(self) -> float:
        """The idle timeout in force (``[idle_timeout] timeout`` or SET_IDLE_TIMEOUT's)."""
        return self._idle_timeout

    def _reset_model(self, *, keep_temperatures: bool) -> None:
        """(Re)create the printer objects as a freshly started Klipper reports them."""
        temps = {
            name: self.status.get(name, {}).get("temperature", AMBIENT) if keep_temperatures
            else AMBIENT
            for name in HEATERS
        }
        self._print_elapsed = 0.0
        self._sd_paused = False
        self._ready_since = time.monotonic()
        self._idle_gcode_running = False
        self._idle_timeout = 600.0  # a restart reloads [idle_timeout] timeout
        self.status = {
            "webhooks": {"state": self.state, "state_message": self.state_message},
            "configfile": self._configfile_status(),
            "print_stats": self._fresh_print_stats(""),
            "virtual_sdcard": {
                "file_path": None, "progress": 0.0, "is_active": False,
                "file_position": 0, "file_size": 0,
            },
            "pause_resume": {"is_paused": False},
            "display_status": {"progress": 0.0, "message": None},
            "idle_timeout": {"state": "Idle", "printing_time": 0.0},
            "heaters": {
                "available_heaters": list(HEATERS),
                "available_sensors": list(HEATERS),
                "available_monitors": [],
            },
            "extruder": {
                "temperature": temps["extruder"], "target": 0.0, "power": 0.0,
                "can_extrude": False, "pressure_advance": 0.0, "smooth_time": 0.04,
            },
            "heater_bed": {"temperature": temps["heater_bed"], "target": 0.0, "power": 0.0},
            "fan": {"speed": 0.0, "rpm": None},  # [fan]: the part-cooling fan (M106/M107)
            "toolhead": {
                "homed_axes": "", "position": [0.0, 0.0, 0.0, 0.0], "extruder": "extruder",
                "print_time": 0.0, "estimated_print_time": 0.0, "max_velocity": 300.0,
                "max_accel": 3000.0, "square_corner_velocity": 5.0, "stalls": 0,
                "axis_minimum": [0.0, 0.0, 0.0, 0.0], "axis_maximum": [235.0, 235.0, 250.0, 0.0],
            },
        }
        for name, variables in self._macro_vars.items():
            self.status[f"gcode_macro {name}"] = copy.deepcopy(variables)

    @staticmethod
    def _fresh_print_stats(filename: str) -> dict[str, Any]:
        return {
            "filename": filename, "total_duration": 0.0, "print_duration": 0.0,
            "filament_used": 0.0, "state": "standby", "message": "",
            "info": {"total_layer": None, "current_layer": None},
        }

    def _configfile_status(self) -> dict[str, Any]:
        config: dict[str, dict[str, str]] = {
            "printer": {"kinematics": "cartesian", "max_velocity": "300", "max_accel": "3000"},
            "virtual_sdcard": {"path": str(self.gcodes_path)},
            "pause_resume": {},
            "display_status": {},
            "respond": {},
            "idle_timeout": {"timeout": "600"},
            "extruder": {"min_temp": "0", "max_temp": "300", "min_extrude_temp": "170"},
            "heater_bed": {"min_temp": "0", "max_temp": "130"},
            "fan": {"pin": "PA8"},
        }
        for name, variables in self._macro_vars.items():
            section = {"gcode": ""}
            section.update({f"variable_{k}": repr(v) for k, v in variables.items()})
            config[f"gcode_macro {name.lower()}"] = section
        settings: dict[str, dict[str, Any]] = {
            "printer": {"kinematics": "cartesian", "max_velocity": 300.0, "max_accel": 3000.0},
            "virtual_sdcard": {"path": str(self.gcodes_path), "on_error_gcode": ""},
            "pause_resume": {"recover_velocity": 50.0},
            "idle_timeout": {"timeout": 600.0, "gcode": "\nTURN_OFF_HEATERS\nM84\n"},
            "extruder": {"min_temp": 0.0, "max_temp": 300.0, "min_extrude_temp": 170.0},
            "heater_bed": {"min_temp": 0.0, "max_temp": 130.0},
            "fan": {"pin": "PA8", "max_power": 1.0, "kick_start_time": 0.1},
        }
        return {
            "config": config, "settings": settings, "warnings": [],
            "save_config_pending": False, "save_config_pending_items": {},
        }

    def _printer_cfg_text(self) -> str:
        sections = self._configfile_status()["config"]
        out = ["# Written by sim.klippy.EmulatedKlippy; the emulator does not read it."]
        for name, options in sections.items():
            out.append(f"\n[{name}]")
            out.extend(f"{key}: {value}" for key, value in options.items())
        return "\n".join(out) + "\n"

    def _set_state(self, state: str, message: str) -> None:
        self.state = state
        self.state_message = message
        self.status["webhooks"] = {"state": state, "state_message": message}
        if state == "ready":
            self._ready_since = time.monotonic()
        self._notify()

    def _objects_visible(self) -> list[str]:
        """Klipper only has its config objects once the config was loaded."""
        if self.state in ("ready", "shutdown"):
            return list(self.status)
        return ["webhooks"]

    def _query(self, objects: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        visible = set(self._objects_visible())
        result: dict[str, dict[str, Any]] = {}
        for name, fields in objects.items():
            if name not in visible:
                result[name] = {}
                continue
            current = self.status[name]
            if fields is None:
                result[name] = copy.deepcopy(current)
            else:
                result[name] = {
                    f: copy.deepcopy(current[f]) for f in fields if f in current
                }
        return result

    def _advance(self, dt: float, now: float) -> None:
        """One tick of the physical model: heaters, the print timer, idle timeout."""
        for name in HEATERS:
            heater = self.status[name]
            target = heater["target"]
            goal = target if target > 0 else AMBIENT
            gap = goal - heater["temperature"]
            if abs(gap) < 0.2:
                temp = goal
            else:
                step = gap * (self.heat_fraction if gap > 0 else self.cool_fraction)
                if gap > 0 and self.max_heat_rate is not None:
                    step = min(step, self.max_heat_rate * dt)
                temp = heater["temperature"] + step
            heater["temperature"] = round(temp, 2)
            heater["power"] = 0.0 if target <= 0 else round(max(0.0, min(1.0, gap / 20.0)), 3)
        ext = self.status["extruder"]
        ext["can_extrude"] = ext["temperature"] >= 170.0

        ps = self.status["print_stats"]
        vsd = self.status["virtual_sdcard"]
        idle = self.status["idle_timeout"]
        if ps["state"] == "printing":
            self._print_elapsed += dt
            ps["print_duration"] += dt
            ps["total_duration"] += dt
            progress = min(1.0, self._print_elapsed / self.print_time) if self.print_time else 1.0
            vsd["progress"] = progress
            vsd["file_position"] = int(progress * vsd["file_size"])
            self.status["display_status"]["progress"] = progress
            ps["filament_used"] = progress * self.filament_total
            if progress >= 1.0:
                self._complete_print()
        elif ps["state"] == "paused":
            ps["total_duration"] += dt  # Klipper keeps counting wall time while paused

        if ps["state"] == "printing":
            if idle["state"] != "Printing":
                idle["state"] = "Printing"
                self._printing_since = now
            idle["printing_time"] = now - self._printing_since
        elif idle["state"] == "Printing":
            idle["state"] = "Ready"
            idle["printing_time"] = 0.0
            self._ready_since = now
        elif (
            idle["state"] == "Ready" and self.state == "ready"
            and now - self._ready_since >= self._idle_timeout
            and not self._idle_gcode_running
        ):
            self._idle_gcode_running = True
            self._spawn(self._run_idle_gcode(), "klippy-idle-timeout")

    async def _run_idle_gcode(self) -> None:
        try:
            await self._run_script("TURN_OFF_HEATERS\nM84")
            self.status["idle_timeout"]["state"] = "Idle"
        except KlippyError:
            pass
        finally:
            self._idle_gcode_running = False
            self._notify()

    def _complete_print(self) -> None:
        ps = self.status["print_stats"]
        vsd = self.status["virtual_sdcard"]
        ps["state"] = "complete"
        vsd.update(file_path=None, is_active=False, progress=1.0, file_position=vsd["file_size"])
        self.status["display_status"]["progress"] = 1.0

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        next_tick = last + TICK
        while True:
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            now = loop.time()
            next_tick = max(next_tick + TICK, now)
            try:
                self._advance(now - last, time.monotonic())
                self._push_status(now)
            except Exception:  # pragma: no cover - keep ticking whatever happens
                log.exception("emulated klippy tick failed")
            last = now
            self.ticks += 1
            self.pushed_print_state = self.status["print_stats"]["state"]
            self._notify()

    def _push_status(self, eventtime: float) -> None:
        for conn in list(self._conns):
            if conn.sub_template is None or not conn.sub_objects:
                continue
            current = self._query(conn.sub_objects)
            diff: dict[str, dict[str, Any]] = {}
            for name, fields in current.items():
                before = conn.sub_sent.get(name, {})
                changed = {k: v for k, v in fields.items() if k not in before or before[k] != v}
                if changed:
                    diff[name] = changed
            conn.sub_sent = current
            if diff:
                conn.push(conn.sub_template, {"eventtime": eventtime, "status": diff})

    # ------------------------------------------------------------------ waiting

    def _notify(self) -> None:
        """Wake every waiter; a fresh Event per generation avoids lost wake-ups."""
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def _wait_until(
        self, check: Callable[[], T | None], timeout: float, describe: Callable[[], str]
    ) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = check()
            if found is not None:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(describe())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def _wait_for_line(
        self, lines: list[str], what: str, pattern: str, timeout: float, start: int
    ) -> str:
        regex = re.compile(pattern)
        pos = start

        def check() -> str | None:
            nonlocal pos
            while pos < len(lines):
                line = lines[pos]
                pos += 1
                if regex.search(line):
                    return line
            return None

        def describe() -> str:
            seen = lines[start:]
            tail = seen[-25:]
            more = f" (last {len(tail)} of {len(seen)})" if len(seen) > len(tail) else ""
            shown = "\n  ".join(repr(s) for s in tail) or "(nothing)"
            return (
                f"no {what} line matching {pattern!r} within {timeout:.1f}s; "
                f"seen since index {start}{more}:\n  {shown}"
            )

        return await self._wait_until(check, timeout, describe)

    async def wait_for_gcode(self, pattern: str, timeout: float = 10.0, start: int = 0) -> str:
        """Wait until a G-code line from ``gcode_lines[start:]`` matches ``pattern`` (re.search)."""
        return await self._wait_for_line(self.gcode_lines, "G-code", pattern, timeout, start)

    async def wait_for_console(self, pattern: str, timeout: float = 10.0, start: int = 0) -> str:
        """Wait until a console line from ``console[start:]`` matches ``pattern`` (re.search)."""
        return await self._wait_for_line(self.console, "console", pattern, timeout, start)

    async def wait_for_print_state(self, state: str, timeout: float = 10.0) -> None:
        """Wait until ``print_stats.state`` equals ``state``."""

        def check() -> bool | None:
            return True if self.status["print_stats"]["state"] == state else None

        await self._wait_until(
            check, timeout,
            lambda: f"print_stats.state is {self.status['print_stats']['state']!r}, "
            f"not {state!r}, after {timeout:.1f}s",
        )

    async def wait_for_state(self, state: str, timeout: float = 10.0) -> None:
        """Wait until the Klippy (webhooks) state equals ``state``."""
        await self._wait_until(
            lambda: True if self.state == state else None, timeout,
            lambda: f"Klippy state is {self.state!r}, not {state!r}, after {timeout:.1f}s",
        )

    async def wait_for_tick(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until ``count`` more status ticks (pushes to subscribers) have happened."""
        target = self.ticks + count
        await self._wait_until(
            lambda: True if self.ticks >= target else None, timeout,
            lambda: f"only {self.ticks - target + count} of {count} ticks in {timeout:.1f}s",
        )

    async def wait_for_remote_method(self, method: str, timeout: float = 10.0) -> None:
        """Wait until some connection (normally Moonraker) registered ``method``."""
        await self._wait_until(
            lambda: True if method in self.registered_methods else None, timeout,
            lambda: f"remote method {method!r} not registered after {timeout:.1f}s; "
            f"registered: {sorted(self.registered_methods)}",
        )

    # ------------------------------------------------------------------ direct control

    def start_print(self, filename: str) -> None:
        """Start printing ``filename`` (relative to gcodes_path) like SDCARD_PRINT_FILE."""
        if self.state != "ready":
            raise KlippyError(self.state_message)
        self._sdcard_print_file(filename)

    async def call_remote_method(self, method: str, **kwargs: Any) -> None:
        """What a macro's ``action_call_remote_method`` does: push to every registrant."""
        targets = [c for c in self._conns if method in c.remote_methods and not c.closed]
        if not targets:
            raise RemoteMethodNotRegistered(f"Remote method '{method}' not registered")
        for conn in targets:
            conn.push(conn.remote_methods[method], dict(kwargs))
        await asyncio.sleep(0)

    def add_macro(
        self, name: str, action: MacroAction | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> None:
        """Define ``gcode_macro NAME``; ``action(params)`` runs when the macro is invoked.

        An action typically calls :meth:`call_remote_method`; as in Klipper, a remote
        call nobody registered is swallowed, the macro still succeeds.
        """
        key = name.upper()
        self._macro_vars[key] = dict(variables or {})
        self.status[f"gcode_macro {key}"] = copy.deepcopy(self._macro_vars[key])
        self.status["configfile"] = self._configfile_status()
        if action is not None:
            self.macro_actions[key] = action

    # ------------------------------------------------------------------ connections

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(reader, writer)
        conn.main_task = asyncio.current_task()
        self._conns.add(conn)
        self._notify()
        try:
            while not conn.closed:
                try:
                    data = await reader.readuntil(ETX)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                except asyncio.LimitOverrunError:
                    log.warning("klippy socket: message over %d bytes, dropping client", READ_LIMIT)
                    break
                try:
                    message = json.loads(data[:-1])
                except ValueError:
                    log.warning("klippy socket: undecodable message %r", data[:200])
                    continue
                if not isinstance(message, dict):
                    continue
                task = asyncio.create_task(self._handle_request(conn, message))
                conn.tasks.add(task)
                task.add_done_callback(conn.tasks.discard)
        except asyncio.CancelledError:
            pass
        finally:
            self._drop(conn)

    def _drop(self, conn: _Connection) -> None:
        if conn in self._conns:
            self._conns.discard(conn)
            self._notify()
        conn.close()
        if conn.main_task is not None and conn.main_task is not asyncio.current_task():
            conn.main_task.cancel()

    async def _handle_request(self, conn: _Connection, message: dict[str, Any]) -> None:
        req_id = message.get("id")
        method = message.get("method")
        params = message.get("params") or {}
        self.requests.append((str(method), params if isinstance(params, dict) else {}))
        try:
            handler = self._endpoint_table().get(str(method)) if method is not None else None
            if handler is None:
                raise KlippyError(f"webhooks: No registered callback for path '{method}'")
            if not isinstance(params, dict):
                raise KlippyError("Invalid request parameters")
            result = await handler(conn, params)
        except KlippyError as err:
            if req_id is not None:
                conn.send({"id": req_id,
                           "error": {"error": "WebRequestError", "message": str(err)}})
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - report like Klipper's internal error
            log.exception("emulated klippy: endpoint %s failed", method)
            if req_id is not None:
                conn.send({"id": req_id, "error": {
                    "error": "WebRequestError",
                    "message": f"Internal Error on WebRequest '{method}': {err}"}})
        else:
            if req_id is not None:
                conn.send({"id": req_id, "result": result})

    def _endpoint_table(self) -> dict[str, Handler]:
        table: dict[str, Handler] = {
            "list_endpoints": self._ep_list_endpoints,
            "info": self._ep_info,
            "emergency_stop": self._ep_emergency_stop,
            "register_remote_method": self._ep_register_remote_method,
            "objects/list": self._ep_objects_list,
            "objects/query": self._ep_objects_query,
            "objects/subscribe": self._ep_objects_subscribe,
            "gcode/help": self._ep_gcode_help,
            "gcode/script": self._ep_gcode_script,
            "gcode/restart": self._ep_restart,
            "gcode/firmware_restart": self._ep_restart,
            "gcode/subscribe_output": self._ep_subscribe_output,
        }
        if self.state in ("ready", "shutdown"):
            table["pause_resume/pause"] = self._ep_pause
            table["pause_resume/resume"] = self._ep_resume
            table["pause_resume/cancel"] = self._ep_cancel
        return table

    # ------------------------------------------------------------------ endpoints

    async def _ep_list_endpoints(self, conn: _Connection, params: dict[str, Any]) -> dict[str, Any]:
        return {"endpoints": list(self._endpoint_table())}

    async def _ep_info(self, conn: _Connection, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "state": self.state,
            "state_message": self.state_message,
            "hostname": socket.gethostname(),
            "klipper_path": str(self.klipper_path),
            "python_path": sys.executable,
            "process_id": os.getpid(),
            "user_id": os.getuid(),
            "group_id": os.getgid(),
            "log_file": str(self.log_file),
            "config_file": str(self.config_file),
            "software_version": SOFTWARE_VERSION,
            "cpu_info": "emulated",
            "app": "Klipper",
        }

    async def _ep_emergency_stop(self, conn: _Connection, params: dict[str, Any]) -> dict[str, Any]:
        self._shutdown("Shutdown due to webhooks request")
        return {}

    async def _ep_register_remote_method(
        self, conn: _Connection, params: dict[str, Any]
    ) -> dict[str, Any]:
        template = params.get("response_template")
        method = params.get("remote_method")
        if not isinstance(template, dict) or not isinstance(method, str) or not method:
            raise KlippyError("Invalid Argument [remote_method/response_template]")
        conn.remote_methods[method] = dict(template)
        self._notify()
        return {}

    async def _ep_objects_list(self, conn: _Connection, params: dict[str, Any]) -> dict[str, Any]:
        return {"objects": self._objects_visible()}

    @staticmethod
    def _objects_param(params: dict[str, Any]) -> dict[str, list[str] | None]:
        if "objects" not in params:
            raise KlippyError("Missing Argument [objects]")
        objects = params["objects"]
        if not isinstance(objects, dict):
            raise KlippyError("Invalid Argument Type [objects]")
        for name, fields in objects.items():
            if fields is not None and not (
                isinstance(fields, list) and all(isinstance(f, str) for f in fields)
            ):
                raise KlippyError(f"Invalid argument for object '{name}'")
        return objects

    async def _ep_objects_query(self, conn: _Connection, params: dict[str, Any]) -> dict[str, Any]:
        objects = self._objects_param(params)
        return {"eventtime": asyncio.get_running_loop().time(), "status": self._query(objects)}

    async def _ep_objects_subscribe(
        self, conn: _Connection, params: dict[str, Any]
    ) -> dict[str, Any]:
        objects = self._objects_param(params)
        template = params.get("response_template", {})
        if not isinstance(template, dict):
            raise KlippyError("Invalid Argument Type [response_template]")
        status = self._query(objects)
        conn.sub_objects = dict(objects)
        conn.sub_template = dict(template) if template else None
        conn.sub_sent = copy.deepcopy(status)
        return {"eventtime": asyncio.get_running_loop().time(), "status": status}

    async def _ep_subscribe_output(
        self, conn: _Connection, params: dict[str, Any]
    ) -> dict[str, Any]:
        template = params.get("response_template")
        if not isinstance(template, dict):
            raise KlippyError("Missing Argument [response_template]")
        conn.output_template = dict(template)
        return {}

    async def _ep_gcode_help(self, conn: _Connection, params: dict[str, Any]) -> dict[str, Any]:
        return dict(self._help_texts())

    async def _ep_gcode_script(self, conn: _Connection, params: dict[str, Any]) -> dict[str, Any]:
        script = params.get("script")
        if not isinstance(script, str):
            raise KlippyError("Missing Argument [script]")
        await self._run_script(script)
        return {}

    async def _ep_restart(self, conn: _Connection, params: dict[str, Any]) -> dict[str, Any]:
        self._request_restart()
        return {}

    async def _ep_pause(self, conn: _Connection, params: dict[str, Any]) -> dict[str, Any]:
        await self._run_script("PAUSE")
        return {}

    async def _ep_resume(self, conn: _Connection, params: dict[str, Any]) -> dict[str, Any]:
        await self._run_script("RESUME")
        return {}

    async def _ep_cancel(self, conn: _Connection, params: dict[str, Any]) -> dict[str, Any]:
        await self._run_script("CANCEL_PRINT")
        return {}

    # ------------------------------------------------------------------ console

    def respond(self, line: str) -> None:
        """Push one console line to every output subscriber (process_gcode_response)."""
        self.console.append(line)
        for conn in list(self._conns):
            if conn.output_template is not None:
                conn.push(conn.output_template, {"response": line})
        self._notify()

    def _respond_info(self, text: str) -> None:
        lines = [part.strip() for part in text.strip().split("\n")]
        self.respond("// " + "\n// ".join(lines))

    def _respond_error(self, text: str) -> None:
        lines = text.strip().split("\n")
        if len(lines) > 1:
            self._respond_info(text)
        self.respond("!! " + lines[0].strip())

    # ------------------------------------------------------------------ G-code

    async def _run_script(self, script: str) -> None:
        """Run lines in order under the G-code mutex; the first error aborts the rest."""
        restart = False
        async with self._gcode_lock:
            for raw in script.split("\n"):
                line = raw.strip()
                if not line:
                    continue
                self.gcode_lines.append(line)
                self._notify()
                try:
                    cmd = parse_gcode_line(line)
                    if cmd is None:
                        continue
                    if cmd.name in ("RESTART", "FIRMWARE_RESTART"):
                        restart = True  # the process goes away once the script returns
                        break
                    await self._run_command(cmd)
                except KlippyError as err:
                    self._respond_error(str(err))
                    raise
        if restart:
            self._request_restart()

    def _request_restart(self) -> None:
        if self._running:
            self._spawn(self.restart(down_time=self.restart_down_time), "klippy-restart")

    async def _run_command(self, cmd: GCodeCommand) -> None:
        if self.state != "ready" and cmd.name not in ALLOWED_NOT_READY:
            raise KlippyError(self.state_message)
        handler = self._gcode_handlers().get(cmd.name)
        if handler is not None:
            result = handler(cmd)
            if inspect.isawaitable(result):
                await result
        elif cmd.name in self._macro_vars:
            await self._run_macro(cmd)
        elif cmd.name in NOOP_COMMANDS:
            if cmd.name in ("G0", "G1"):
                self._note_activity()
        else:
            self._respond_info(f'Unknown command:"{cmd.name}"')

    async def _run_macro(self, cmd: GCodeCommand) -> None:
        action = self.macro_actions.get(cmd.name)
        if action is None:
            return
        try:
            result = action(dict(cmd.params))
            if inspect.isawaitable(result):
                await result
        except RemoteMethodNotRegistered as err:
            log.info("Remote Call Error in %s: %s", cmd.name, err)  # Klipper only logs this

    def _gcode_handlers(self) -> dict[str, Callable[[GCodeCommand], Any]]:
        return {
            "SDCARD_PRINT_FILE": self._cmd_sdcard_print_file,
            "SDCARD_RESET_FILE": self._cmd_sdcard_reset_file,
            "PAUSE": self._cmd_pause,
            "RESUME": self._cmd_resume,
            "CANCEL_PRINT": self._cmd_cancel_print,
            "CLEAR_PAUSE": self._cmd_clear_pause,
            "M104": lambda c: self._cmd_set_temp(c, "extruder", wait=False),
            "M109": lambda c: self._cmd_set_temp(c, "extruder", wait=True),
            "M140": lambda c: self._cmd_set_temp(c, "heater_bed", wait=False),
            "M190": lambda c: self._cmd_set_temp(c, "heater_bed", wait=True),
            "SET_HEATER_TEMPERATURE": self._cmd_set_heater_temperature,
            "TURN_OFF_HEATERS": self._cmd_turn_off_heaters,
            "TEMPERATURE_WAIT": self._cmd_temperature_wait,
            "M106": self._cmd_m106,
            "M107": self._cmd_m107,
            "SET_IDLE_TIMEOUT": self._cmd_set_idle_timeout,
            "RESPOND": self._cmd_respond,
            "M117": self._cmd_m117,
            "M118": lambda c: self.respond(f"echo: {c.raw_args}"),
            "ECHO": lambda c: self._respond_info(c.raw_args),
            "SET_GCODE_VARIABLE": self._cmd_set_gcode_variable,
            "SET_PRINT_STATS_INFO": self._cmd_set_print_stats_info,
            "M112": lambda c: self._shutdown("Shutdown due to M112 command"),
            "STATUS": self._cmd_status,
            "HELP": self._cmd_help,
            "M105": self._cmd_m105,
            "M115": lambda c: self.respond(
                f"ok FIRMWARE_NAME:Klipper FIRMWARE_VERSION:{SOFTWARE_VERSION}"),
            "G28": self._cmd_g28,
            "M84": self._cmd_m84,
            "M18": self._cmd_m84,
        }

    def _help_texts(self) -> dict[str, str]:
        texts = {
            "SDCARD_PRINT_FILE": "Loads a SD file and starts the print",
            "SDCARD_RESET_FILE": "Clears a loaded SD File",
            "PAUSE": "Pauses the current print",
            "RESUME": "Resumes the print from a pause",
            "CANCEL_PRINT": "Cancel the current print",
            "CLEAR_PAUSE": "Clears the current paused state without resuming the print",
            "SET_HEATER_TEMPERATURE": "Sets a heater temperature",
            "TURN_OFF_HEATERS": "Turn off all heaters",
            "TEMPERATURE_WAIT": "Wait for a temperature on a sensor",
            "SET_IDLE_TIMEOUT": "Set the idle timeout in seconds",
            "RESPOND": "Echo the message prepended with a prefix",
            "SET_GCODE_VARIABLE": "Set the value of a G-Code macro variable",
            "SET_PRINT_STATS_INFO": "Pass slicer info like layer act and total to klipper",
            "STATUS": "Report the printer status",
            "HELP": "Report the list of available extended G-Code commands",
            "RESTART": "Reload config file and restart host software",
            "FIRMWARE_RESTART": "Restart firmware, host, and reload config",
        }
        for name in self._macro_vars:
            texts[name] = "G-Code macro"
        return texts

    def _note_activity(self) -> None:
        idle = self.status["idle_timeout"]
        if idle["state"] != "Printing":
            idle["state"] = "Ready"
            self._ready_since = time.monotonic()

    # --- virtual_sdcard / print_stats / pause_resume

    def _sdcard_print_file(self, filename: str) -> None:
        ps = self.status["print_stats"]
        vsd = self.status["virtual_sdcard"]
        if ps["state"] == "printing" and vsd["is_active"]:
            raise KlippyError("SD busy")
        name = filename[1:] if filename.startswith("/") else filename
        path = self.gcodes_path / name
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise OSError(path)
        except OSError:
            raise KlippyError("Unable to open file") from None
        self.respond(f"File opened:{name} Size:{size}")
        self.respond("File selected")
        self._print_elapsed = 0.0
        self._sd_paused = False
        fresh = self._fresh_print_stats(name)
        fresh["state"] = "printing"
        self.status["print_stats"] = fresh
        vsd.update(file_path=str(path), progress=0.0, is_active=True, file_position=0,
                   file_size=size)
        self.status["pause_resume"]["is_paused"] = False
        self.status["display_status"]["progress"] = 0.0
        idle = self.status["idle_timeout"]
        if idle["state"] != "Printing":
            idle["state"] = "Printing"
            self._printing_since = time.monotonic()
        self._notify()

    def _cmd_sdcard_print_file(self, cmd: GCodeCommand) -> None:
        self._sdcard_print_file(cmd.get("FILENAME"))

    def _cmd_sdcard_reset_file(self, cmd: GCodeCommand) -> None:
        if self.status["virtual_sdcard"]["is_active"]:
            raise KlippyError("SDCARD_RESET_FILE cannot be run from the sdcard")
        self._reset_sdcard()
        self.status["print_stats"] = self._fresh_print_stats("")

    def _reset_sdcard(self) -> None:
        self.status["virtual_sdcard"].update(
            file_path=None, progress=0.0, is_active=False, file_position=0, file_size=0)
        self.status["display_status"]["progress"] = 0.0

    def _cmd_pause(self, cmd: GCodeCommand) -> None:
        pause = self.status["pause_resume"]
        if pause["is_paused"]:
            self._respond_info("Print already paused")
            return
        if self.status["virtual_sdcard"]["is_active"]:
            self._sd_paused = True
            self.status["virtual_sdcard"]["is_active"] = False
            self.status["print_stats"]["state"] = "paused"
        else:
            self._sd_paused = False
            self._respond_info("action:paused")
        pause["is_paused"] = True
        self._notify()

    def _cmd_resume(self, cmd: GCodeCommand) -> None:
        pause = self.status["pause_resume"]
        if not pause["is_paused"]:
            self._respond_info("Print is not paused, resume aborted")
            return
        if self._sd_paused:
            self.status["virtual_sdcard"]["is_active"] = True
            self.status["print_stats"]["state"] = "printing"
        else:
            self._respond_info("action:resumed")
        self._sd_paused = False
        pause["is_paused"] = False
        self._notify()

    def _cmd_cancel_print(self, cmd: GCodeCommand) -> None:
        if self.status["virtual_sdcard"]["is_active"] or self._sd_paused:
            self._reset_sdcard()
            self.status["print_stats"]["state"] = "cancelled"
        else:
            self._respond_info("action:cancel")
        self._cmd_clear_pause(cmd)

    def _cmd_clear_pause(self, cmd: GCodeCommand) -> None:
        self._sd_paused = False
        self.status["pause_resume"]["is_paused"] = False
        self._notify()

    def _cmd_set_print_stats_info(self, cmd: GCodeCommand) -> None:
        info = self.status["print_stats"]["info"]
        if "TOTAL_LAYER" in cmd.params:
            info["total_layer"] = int(cmd.get_float("TOTAL_LAYER", minval=0))
        if "CURRENT_LAYER" in cmd.params:
            info["current_layer"] = int(cmd.get_float("CURRENT_LAYER", minval=0))

    # --- heaters / idle timeout

    def _set_target(self, heater: str, target: float) -> None:
        max_temp = HEATERS[heater]
        if target != 0 and not 0 <= target <= max_temp:
            raise KlippyError(
                f"Requested temperature ({target:.1f}) out of range (0.0:{max_temp:.1f})")
        self.status[heater]["target"] = float(target)
        self._notify()

    def _temperature_report(self) -> str:
        """Klipper's ``B:60.0 /60.0 T0:200.0 /215.0`` (sorted by G-code id)."""
        parts = sorted((GCODE_IDS[name], self.status[name]) for name in HEATERS)
        return " ".join(f"{gid}:{h['temperature']:.1f} /{h['target']:.1f}" for gid, h in parts)

    async def _wait_until_temperature(self, done: Callable[[], bool]) -> None:
        """Block as M109/M190/TEMPERATURE_WAIT do, holding the G-code lock (the caller has
        it), printing the temperatures every second, until ``done`` or a shutdown."""
        loop = asyncio.get_running_loop()
        next_report = loop.time()
        while not done():
            if self.state != "ready":
                raise KlippyError(self.state_message)
            now = loop.time()
            if now >= next_report:
                self.respond(self._temperature_report())
                next_report = now + WAIT_REPORT_EVERY
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(0.01, next_report - now))

    async def _wait_temperature(self, heater: str) -> None:
        """M109/M190: until within Klipper's settle tolerance of the target."""
        def done() -> bool:
            data = self.status[heater]
            return data["target"] <= 0 or \
                abs(data["temperature"] - data["target"]) <= TEMP_TOLERANCE

        await self._wait_until_temperature(done)

    async def _cmd_temperature_wait(self, cmd: GCodeCommand) -> None:
        """TEMPERATURE_WAIT SENSOR=<config name> [MINIMUM=] [MAXIMUM=] (extras/heaters.py)."""
        sensor = cmd.get("SENSOR")
        if sensor not in self.status["heaters"]["available_sensors"]:
            raise KlippyError(f"Unknown sensor '{sensor}'")
        low = cmd.get_float("MINIMUM", -math.inf)
        high = cmd.get_float("MAXIMUM", math.inf)
        if "MAXIMUM" in cmd.params and high <= low:
            raise KlippyError(f"Error on '{cmd.line}': MAXIMUM must be above {low}")
        if low == -math.inf and high == math.inf:
            raise KlippyError("Error on 'TEMPERATURE_WAIT': missing MINIMUM or MAXIMUM.")

        def done() -> bool:
            return bool(low <= self.status[sensor]["temperature"] <= high)

        await self._wait_until_temperature(done)

    def _cmd_m106(self, cmd: GCodeCommand) -> None:
        """M106 S<0..255>: the part-cooling fan's speed, a fraction in ``fan.speed``."""
        value = cmd.get_float("S", 255.0, minval=0.0) / 255.0
        max_power = 1.0
        self.status["fan"]["speed"] = round(max(0.0, min(max_power, value * max_power)), 4)
        self._notify()

    def _cmd_m107(self, cmd: GCodeCommand) -> None:
        self.status["fan"]["speed"] = 0.0
        self._notify()

    async def _cmd_set_temp(self, cmd: GCodeCommand, heater: str, *, wait: bool) -> None:
        self._set_target(heater, cmd.get_float("S", 0.0))
        if wait:
            await self._wait_temperature(heater)

    async def _cmd_set_heater_temperature(self, cmd: GCodeCommand) -> None:
        heater = cmd.get("HEATER")
        if heater not in HEATERS:
            raise KlippyError(f"The value '{heater}' is not valid for HEATER")
        self._set_target(heater, cmd.get_float("TARGET", 0.0))

    def _cmd_turn_off_heaters(self, cmd: GCodeCommand) -> None:
        for heater in HEATERS:
            self.status[heater]["target"] = 0.0
        self._notify()

    def _cmd_set_idle_timeout(self, cmd: GCodeCommand) -> None:
        timeout = cmd.get_float("TIMEOUT", self._idle_timeout)
        if timeout <= 0:  # Klipper: get_float('TIMEOUT', ..., above=0.)
            raise KlippyError(f"Error on '{cmd.line}': TIMEOUT must be above 0.0")
        self._idle_timeout = timeout
        self._respond_info(f"idle_timeout: Timeout set to {timeout:.2f} s")
        if self.status["idle_timeout"]["state"] == "Ready":
            self._ready_since = time.monotonic()

    # --- console / macros / misc

    def _cmd_respond(self, cmd: GCodeCommand) -> None:
        prefix = "echo:"
        kind = cmd.params.get("TYPE")
        if kind is not None:
            kind = kind.lower()
            if kind not in RESPOND_PREFIXES:
                raise KlippyError(
                    f"RESPOND TYPE '{kind}' is invalid. Must be one of 'echo', "
                    "'echo_no_space', 'command', or 'error'")
            prefix = RESPOND_PREFIXES[kind]
        prefix = cmd.params.get("PREFIX", prefix)
        msg = cmd.params.get("MSG", "")
        if kind == "echo_no_space" and "PREFIX" not in cmd.params:
            self.respond(f"{prefix}{msg}")
        else:
            self.respond(f"{prefix} {msg}")

    def _cmd_m117(self, cmd: GCodeCommand) -> None:
        self.status["display_status"]["message"] = cmd.raw_args or None
        self._notify()

    def _cmd_set_gcode_variable(self, cmd: GCodeCommand) -> None:
        macro = cmd.get("MACRO").upper()
        variable = cmd.get("VARIABLE").lower()
        value_text = cmd.get("VALUE")
        if macro not in self._macro_vars:
            raise KlippyError(f"Unknown gcode_macro: {macro}")
        try:
            value = ast.literal_eval(value_text)
            json.dumps(value)
        except (ValueError, SyntaxError, TypeError):
            raise KlippyError(f"Unable to parse '{value_text}' as a literal") from None
        # Lenient: unlike Klipper, unknown variables are created, since macros here
        # are declared by name only.
        self.status[f"gcode_macro {macro}"][variable] = value
        self._notify()

    def _cmd_status(self, cmd: GCodeCommand) -> None:
        if self.state == "ready":
            self._respond_info("Klipper state: Ready")
            return
        raise KlippyError(self.state_message.rstrip() + "\nKlipper state: Not ready")

    def _cmd_help(self, cmd: GCodeCommand) -> None:
        lines = ["Available extended commands:"]
        lines += [f"{name:<10} : {text}" for name, text in sorted(self._help_texts().items())]
        self._respond_info("\n".join(lines))

    def _cmd_m105(self, cmd: GCodeCommand) -> None:
        self.respond(f"ok {self._temperature_report()}")

    def _cmd_g28(self, cmd: GCodeCommand) -> None:
        self.status["toolhead"]["homed_axes"] = "xyz"
        self._note_activity()

    def _cmd_m84(self, cmd: GCodeCommand) -> None:
        self.status["toolhead"]["homed_axes"] = ""

    def _shutdown(self, reason: str) -> None:
        """Klipper's shutdown: everything stops, heaters off, only a restart recovers."""
        if self.state == "shutdown":
            return
        message = (
            f"{reason}\nOnce the underlying issue is corrected, use the "
            '"FIRMWARE_RESTART" command to reset the firmware, reload the config, '
            "and restart the host software.\nPrinter is shutdown"
        )
        ps = self.status["print_stats"]
        if ps["state"] in ("printing", "paused"):
            ps["state"] = "error"
            ps["message"] = reason
            self.status["virtual_sdcard"]["is_active"] = False
        for heater in HEATERS:
            self.status[heater]["target"] = 0.0
            self.status[heater]["power"] = 0.0
        self._set_state("shutdown", message)
        self.respond(f"!! {reason}")
