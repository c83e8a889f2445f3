"""What failwatch does to the printer, through Moonraker's JSON-RPC.

Order matters for a failing print: stop the motion first (pause or
cancel), then the heaters, then the user's G-code, then tell the user. One
action failing never keeps the others from running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from failwatch_moonraker.secrets import REDACTED_CONSOLE, scrub

log = logging.getLogger(__name__)

HEATER_ACTIONS = ("heaters_off", "extruder_off", "bed_off")
# PAUSE answers at once unless Klipper holds its G-code lock (M109, M190,
# TEMPERATURE_WAIT, a long macro): then it waits in line and runs when the lock is
# free. Moonraker never gives up on it, so neither does failwatch.
PAUSE_PATIENCE = 3.0
PAUSE_WAIT_MAX = 6 * 3600.0
PROMPT_END = 'RESPOND TYPE=command MSG="action:prompt_end"'
ORDER = ("pause", "cancel", "heaters_off", "extruder_off", "bed_off", "gcode", "notify")

# Klipper's extended G-code parser ends the arguments at # * ; and splits on
# quotes, so those never go into a RESPOND message.
_UNSAFE = str.maketrans({'"': "'", ";": ",", "#": "no.", "*": "x", "\n": " ", "\r": " ",
                         "\\": "/"})


class RpcClient(Protocol):
    async def call(self, method: str, params: dict[str, object] | None = None,
                   timeout: float = 10.0) -> object: ...


def console_text(text: str) -> str:
    """A message made safe for ``RESPOND MSG="..."``, its secrets scrubbed."""
    return " ".join(scrub(text, mask=REDACTED_CONSOLE).translate(_UNSAFE).split())


def respond_script(text: str, error: bool = False) -> str:
    """The console line, prefixed ``failwatch:`` so users can tell who spoke."""
    prefix = "!! failwatch:" if error else "failwatch:"
    return f'RESPOND PREFIX="{prefix}" MSG="{console_text(text)}"'


def prompt_script(lines: Sequence[str]) -> str:
    """Mainsail/Fluidd/KlipperScreen ``action:prompt`` lines, one RESPOND each."""
    return "\n".join(f'RESPOND TYPE=command MSG="action:{console_text(line)}"' for line in lines)


def failure_dialog(reason: str, link: str = "", with_macros: bool = True,
                   heaters_off: bool = False) -> str:
    """The dialog shown on an automatic pause; its buttons run failwatch's macros.

    Without failwatch_macros.cfg included, the buttons fall back to Klipper's
    own RESUME and CANCEL_PRINT and the "ignore" button is left out; that
    RESUME does not reheat, so the dialog says so when heaters go off.
    """
    lines = ["prompt_begin failwatch paused the print", f"prompt_text {reason}"]
    if link:
        lines.append(f"prompt_text Snapshot: {link}")
    if heaters_off and not with_macros:
        lines.append("prompt_text failwatch turns heaters off and this Resume does not reheat: "
                     "heat up first (M109, M190) or include failwatch_macros.cfg")
    if with_macros:
        lines += [
            "prompt_footer_button Resume|_FAILWATCH_RESUME|primary",
            "prompt_footer_button Cancel print|_FAILWATCH_CANCEL|error",
            "prompt_footer_button Resume, ignore this print|_FAILWATCH_RESUME_IGNORE|warning",
        ]
    else:
        lines += [
            "prompt_footer_button Resume|RESUME|primary",
            "prompt_footer_button Cancel print|CANCEL_PRINT|error",
        ]
    lines.append("prompt_show")
    return prompt_script(lines)


def heater_script(action: str, available_heaters: Sequence[str] | None) -> str:
    """G-code that brings the named heaters' targets to 0."""
    if action == "heaters_off":
        return "TURN_OFF_HEATERS"
    heaters = list(available_heaters or ())
    if action == "extruder_off":
        extruders = [h for h in heaters if h.startswith("extruder")]
        if not extruders:
            return "M104 S0"
        return "\n".join(f"SET_HEATER_TEMPERATURE HEATER={h} TARGET=0" for h in extruders)
    if action == "bed_off":
        if heaters and "heater_bed" not in heaters:
            return "M140 S0"
        return "SET_HEATER_TEMPERATURE HEATER=heater_bed TARGET=0"
    raise ValueError(action)


def ordered(actions: Iterable[str]) -> list[str]:
    chosen = set(actions)
    return [name for name in ORDER if name in chosen]


def split_delayed(actions: Iterable[str], heaters_off_delay: float) -> tuple[list[str], list[str]]:
    """(run now, run after the delay): heater actions wait when a delay is set."""
    names = ordered(actions)
    if heaters_off_delay <= 0:
        return names, []
    now = [n for n in names if n not in HEATER_ACTIONS]
    later = [n for n in names if n in HEATER_ACTIONS]
    return now, later


def describe(actions: Sequence[str], delay: float = 0.0, delayed: Sequence[str] = ()) -> str:
    """How the console message says what was done."""
    words = {
        "pause": "paused the print",
        "cancel": "cancelled the print",
        "heaters_off": "turned all heaters off",
        "extruder_off": "turned the hotend off",
        "bed_off": "turned the bed off",
        "gcode": "ran failure_gcode",
    }
    done = [words[a] for a in actions if a in words]
    later = [words[a] for a in delayed if a in words]
    if later:
        done.append(f"will {' and '.join(w.replace('turned', 'turn') for w in later)} "
                    f"in {delay:g} s unless resumed")
    return ", ".join(done)


@dataclass
class ActionResult:
    action: str
    ok: bool
    error: str = ""
    waited: float = 0.0  # seconds a PAUSE waited in line behind Klipper's G-code lock


def _forget(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: a late answer nobody waits for is not an error


class ActionRunner:
    """Runs actions in order; a PAUSE that Klipper queues is waited for, not failed.

    ``on_pause_queued`` is awaited once when the PAUSE has not been answered within
    ``pause_patience`` (the daemon says why Klipper is busy); ``wait_paused``
    completes when the printer's status shows the print paused, which confirms a
    queued PAUSE even before its answer arrives.
    """

    def __init__(self, client: RpcClient, failure_gcode: str = "", *,
                 pause_patience: float = PAUSE_PATIENCE,
                 on_pause_queued: Callable[[], Awaitable[None]] | None = None,
                 wait_paused: Callable[[], Awaitable[object]] | None = None) -> None:
        self.client = client
        self.failure_gcode = failure_gcode
        self.pause_patience = pause_patience
        self.on_pause_queued = on_pause_queued
        self.wait_paused = wait_paused

    async def run(self, actions: Iterable[str], message: str, *, error: bool = False,
                  available_heaters: Sequence[str] | None = None) -> list[ActionResult]:
        """Run each action in the safe order; ``message`` is what ``notify`` says."""
        results: list[ActionResult] = []
        for name in ordered(actions):
            try:
                waited = await self._one(name, message, error, available_heaters)
            except Exception as exc:  # one failed action must not stop the rest
                log.error("action %s failed: %s", name, exc)
                results.append(ActionResult(name, False, str(exc)))
            else:
                results.append(ActionResult(name, True, waited=waited))
        return results

    async def pause(self) -> float:
        """PAUSE; returns how long it waited in line (0 when Klipper was not busy)."""
        loop = asyncio.get_running_loop()
        since = loop.time()
        call = asyncio.ensure_future(self.client.call("printer.print.pause",
                                                      timeout=PAUSE_WAIT_MAX))
        confirm = asyncio.ensure_future(self.wait_paused()) if self.wait_paused else None
        try:
            done, _ = await asyncio.wait({call}, timeout=self.pause_patience)
            if call in done:
                call.result()
                return 0.0
            if confirm is not None and confirm.done():
                return 0.0  # paused already; Klipper is finishing a parking PAUSE macro
            if self.on_pause_queued is not None:
                try:
                    await self.on_pause_queued()
                except Exception as exc:  # saying why must not lose the pause
                    log.debug("pause: %s", exc)
            waiters: set[asyncio.Future[Any]] = {call}
            if confirm is not None:
                waiters.add(confirm)
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if call in done:
                call.result()  # an error answer: the pause failed after all
            return loop.time() - since
        finally:
            if confirm is not None:
                confirm.cancel()
            if not call.done():
                call.add_done_callback(_forget)  # its answer comes when Klipper runs it

    async def _one(self, name: str, message: str, error: bool,
                   available_heaters: Sequence[str] | None) -> float:
        if name == "pause":
            return await self.pause()
        if name == "cancel":
            await self.client.call("printer.print.cancel", timeout=30.0)
        elif name in HEATER_ACTIONS:
            await self.gcode(heater_script(name, available_heaters))
        elif name == "gcode":
            if self.failure_gcode:
                await self.gcode(self.failure_gcode, timeout=120.0)
        elif name == "notify":
            await self.say(message, error=error)
        else:
            raise ValueError(f"unknown action {name!r}")
        return 0.0

    async def gcode(self, script: str, timeout: float = 30.0) -> None:
        await self.client.call("printer.gcode.script", {"script": script}, timeout=timeout)

    async def say(self, text: str, *, error: bool = False) -> None:
        """A line on the Mainsail/Fluidd console."""
        await self.gcode(respond_script(text, error))


__all__ = [
    "ActionResult",
    "ActionRunner",
    "PROMPT_END",
    "console_text",
    "describe",
    "failure_dialog",
    "heater_script",
    "ordered",
    "prompt_script",
    "respond_script",
    "split_delayed",
]
