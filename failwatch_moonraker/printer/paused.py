"""A print failwatch paused, until it goes on or ends: the printer side of it.

Remembers the heaters and the fan just before failwatch acts, raises the
idle timeout while the print waits for the user, reheats on failwatch's
Resume, and undoes what it changed (the idle timeout, the dialog) when the
print leaves the paused state, from whichever button. The decisions are
:mod:`failwatch_moonraker.printer.resume`'s; this is the thin async edge.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Sequence
from typing import Any

from failwatch_moonraker.printer.actions import PROMPT_END, ActionRunner
from failwatch_moonraker.printer.resume import (
    PauseMemory,
    ResumePlan,
    busy_reason,
    heater_objects,
    idle_timeout_message,
    idle_timeout_script,
    plan_resume,
    printer_idle_timeout,
    query_objects,
    remember,
)

log = logging.getLogger("failwatch")

RESUME_WAIT_MAX = 3 * 3600.0  # a cold bed can take many minutes; Klipper sets the pace
# objects/query never waits for Klipper's G-code lock: a slow answer must not hold up a pause.
QUERY_BEFORE_PAUSE = 2.0


class PausedPrint:
    def __init__(self, actions: ActionRunner, memory: PauseMemory | None = None) -> None:
        self.actions = actions
        self.memory = memory
        self.dialog_open = False
        self._own_idle_timeout: float | None = None

    async def _query(self, heaters: Sequence[str], timeout: float = 10.0) -> dict[str, Any]:
        result = await self.actions.client.call(
            "printer.objects.query", {"objects": query_objects(heaters)}, timeout=timeout)
        status = result.get("status") if isinstance(result, dict) else None
        return status if isinstance(status, dict) else {}

    async def remember(self, available_heaters: Sequence[str] | None,
                       print_id: str | None) -> None:
        """Just before failwatch acts: the targets, the fan, the printer's idle timeout.

        ``objects/query`` does not wait for Klipper's G-code lock, so this never
        holds up the pause.
        """
        heaters = heater_objects(available_heaters)
        try:
            status = await self._query(heaters, timeout=QUERY_BEFORE_PAUSE)
        except Exception as exc:  # the pause goes first; remembering is a courtesy
            log.warning("pause: could not read the heaters before acting (%s); failwatch's "
                        "Resume will not reheat", exc)
            return
        memory = remember(status, heaters, print_id)
        if self.memory is not None and self.memory.print_id == print_id:
            memory.idle_timeout = self.memory.idle_timeout  # still ours to put back
        self.memory = memory
        self._own_idle_timeout = printer_idle_timeout(status)
        log.info("pause: remembered %s",
                 ", ".join(f"{h} {t:g}" for h, t in memory.targets.items()) +
                 (f", fan {memory.fan:g}" if memory.fan is not None else ""))

    async def why_busy(self, available_heaters: Sequence[str] | None) -> str:
        heaters = heater_objects(available_heaters)
        try:
            return busy_reason(await self._query(heaters, timeout=QUERY_BEFORE_PAUSE), heaters)
        except Exception as exc:
            log.debug("pause: could not read the heaters: %s", exc)
            return "Klipper is busy"

    async def hold_position(self, paused_idle_timeout: float) -> str:
        """Raise Klipper's idle timeout while paused; the console text says for how long."""
        own = self._own_idle_timeout
        if paused_idle_timeout <= 0 or own is None:
            return ""
        if own >= paused_idle_timeout:
            return idle_timeout_message(own)
        await self.actions.gcode(idle_timeout_script(paused_idle_timeout))
        if self.memory is not None:
            self.memory.idle_timeout = own
        log.info("pause: idle timeout %g s while paused (the printer's own: %g s)",
                 paused_idle_timeout, own)
        return idle_timeout_message(paused_idle_timeout)

    def leave(self, why: str) -> Coroutine[Any, Any, None] | None:
        """The print is printing again or ended: what to undo (close the dialog, put the
        idle timeout back), as a coroutine to run, or None if nothing is left to undo.

        The memory is dropped at once, so a burst of status updates undoes it once.
        """
        memory, self.memory = self.memory, None
        dialog, self.dialog_open = self.dialog_open, False
        idle = memory.idle_timeout if memory is not None else None
        if not dialog and idle is None:
            return None
        return self._undo(dialog, idle, why)

    async def _undo(self, dialog: bool, idle: float | None, why: str) -> None:
        if dialog:
            try:
                await self.actions.gcode(PROMPT_END)
            except Exception as exc:
                log.debug("dialog: could not close it: %s", exc)
        if idle is not None:
            try:
                await self.actions.gcode(idle_timeout_script(idle))
            except Exception as exc:
                log.warning("idle timeout: could not put the printer's own %g s back: %s",
                            idle, exc)
                return
            log.info("idle timeout back to the printer's own %g s (print %s)", idle, why)

    async def plan(self, available_heaters: Sequence[str] | None,
                   print_id: str | None) -> ResumePlan | None:
        """What failwatch's Resume would do now; None if the printer is not paused.

        Asks the printer itself: the status pushes may lag a button pressed at once.
        """
        memory = self.memory if self.memory and self.memory.print_id == print_id else None
        heaters = heater_objects(list(memory.targets) if memory and memory.targets
                                 else available_heaters)
        objects = query_objects(heaters)
        objects["print_stats"] = ["state"]
        result = await self.actions.client.call("printer.objects.query", {"objects": objects})
        status = result.get("status") if isinstance(result, dict) else None
        status = status if isinstance(status, dict) else {}
        if status.get("print_stats", {}).get("state") != "paused":
            return None
        return plan_resume(memory, status)

    async def resume(self, plan: ResumePlan, message: str) -> None:
        """Reheat what failwatch turned off, wait for it, RESUME: one script, so Klipper
        runs it in order and a heater that fails stops it before RESUME."""
        log.info("resume: %s", message)
        await self.actions.gcode(plan.script(message), timeout=RESUME_WAIT_MAX)

    def to_dict(self) -> dict[str, Any]:
        return {"memory": self.memory.to_dict() if self.memory is not None else None,
                "dialog_open": self.dialog_open}

    @classmethod
    def from_dict(cls, actions: ActionRunner, data: Any) -> PausedPrint:
        """As saved in the state file: a restart while paused still reheats and undoes."""
        data = data if isinstance(data, dict) else {}
        paused = cls(actions, PauseMemory.from_dict(data.get("memory")))
        paused.dialog_open = data.get("dialog_open") is True
        return paused
