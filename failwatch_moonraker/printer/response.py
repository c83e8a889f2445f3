"""What failwatch does when a frame fires: act first, then tell the user.

The PAUSE (and heaters, macro) go out before anything else; then the console
line, the annotated snapshot, the notifications and the failure dialog. A PAUSE
that waits in line behind Klipper's G-code lock (``M109`` and the like) is a
queued pause, not a failed one: it is confirmed from ``print_stats`` and the
console says what really happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from failwatch_moonraker.camera.annotate import SavedSnapshot
from failwatch_moonraker.core.policy import Level
from failwatch_moonraker.core.session import FrameOutcome
from failwatch_moonraker.notify import Event
from failwatch_moonraker.predictors import Prediction
from failwatch_moonraker.printer.actions import (
    HEATER_ACTIONS,
    describe,
    failure_dialog,
    split_delayed,
)
from failwatch_moonraker.printer.moonraker import MoonrakerError

if TYPE_CHECKING:
    from failwatch_moonraker.daemon import Daemon

log = logging.getLogger("failwatch")


class FailureResponse:
    """One printer's response to a warning or a failure."""

    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon
        self.pause_busy = ""  # why Klipper held the PAUSE in line, once known
        self.heaters_off: asyncio.Task[Any] | None = None  # heaters_off_delay pending
        self.paused_seen = asyncio.Event()  # print_stats says paused

    async def fire(self, outcome: FrameOutcome, prediction: Prediction, jpeg: bytes) -> None:
        """In a task of its own. Not serialised with an earlier warning's actions: its
        RESPOND may be waiting behind Klipper's G-code lock, and the PAUSE must get
        in line as soon as possible (Klipper runs requests in the order they come)."""
        try:
            await self._fire_now(outcome, prediction, jpeg)
        except MoonrakerError as exc:
            log.error("actions: %s", exc)
        except asyncio.CancelledError:
            raise
        except Exception:  # never a silent end of a background task
            log.exception("actions: unexpected error")

    async def pause_queued(self) -> None:
        """The PAUSE waits in line behind Klipper's G-code lock: say so now in the log (the
        console can only show it once Klipper's wait is over)."""
        heaters = self.d.status.get("heaters", {}).get("available_heaters")
        reason = await self.d.paused_print.why_busy(heaters)
        log.warning("pause requested; %s, it pauses when the wait ends", reason)
        self.pause_busy = reason

    async def wait_paused(self) -> None:
        await self.paused_seen.wait()

    async def _fire_now(self, outcome: FrameOutcome, prediction: Prediction,
                        jpeg: bytes) -> None:
        """Act first (the pause must not wait for pictures), then tell the user."""
        cfg = self.d.config.actions
        heaters = self.d.status.get("heaters", {}).get("available_heaters")
        failure = outcome.fire is Level.FAILURE
        if failure:
            now_actions, later = split_delayed(cfg.on_failure, cfg.heaters_off_delay)
            done = describe(now_actions, cfg.heaters_off_delay, later) or "no action configured"
            message = f"Print failure detected ({self.d.seen(outcome.camera)}): {done}."
        else:
            now_actions, later = list(cfg.on_warning), []
            would_pause = "pause" in cfg.on_failure and not self.d.session.failure_fired
            tail = "; failwatch pauses the print if it gets worse" if would_pause else ""
            message = f"Possible print failure ({self.d.seen(outcome.camera)}){tail}."
        log.warning("%s", message)
        pausing = "pause" in now_actions
        if pausing:
            if self.d.session.print_state != "paused":
                self.paused_seen.clear()
            self.pause_busy = ""
            await self.d.paused_print.remember(heaters, self.d.session.print_id)
        results = await self.d.actions.run([a for a in now_actions if a != "notify"], message,
                                         available_heaters=heaters)
        if later:
            self.heaters_off = self.d.spawn(self._delayed_heaters(later,
                                                                  self.d.session.resume_count),
                                            "heaters-off")
        paused = any(r.action == "pause" and r.ok for r in results)
        waited = max((r.waited for r in results if r.action == "pause"), default=0.0)
        if paused and waited:
            log.warning("paused after waiting %.0f s in line (%s)", waited,
                        (self.pause_busy or "Klipper is busy").replace(" is ", " was "))
            message += (f" The pause was requested while "
                        f"{(self.pause_busy or 'Klipper is busy').replace(' is ', ' was ')} "
                        f"and ran when the wait ended, {waited:.0f} s later.")
        elif paused:
            log.info("paused")
        if paused:
            try:
                held = await self.d.paused_print.hold_position(cfg.paused_idle_timeout)
            except MoonrakerError as exc:
                log.error("idle timeout: could not raise it: %s", exc)
                held = ""
            if held:
                message += f" {held[0].upper()}{held[1:]}."
            await self.d.save(force=True)
        saved = await self.save_snapshot(jpeg, prediction, str(outcome.fire), outcome.camera)
        link = f" Snapshot: {saved.link}" if saved else ""
        if "notify" in now_actions:
            try:
                await self.d.actions.say(message + link, error=failure)
            except MoonrakerError as exc:
                log.error("action notify failed: %s", exc)
            self._notify_others(str(outcome.fire), message, prediction, jpeg, saved,
                                outcome.camera)
        if paused and self.d.session.print_state in ("paused", "printing"):
            reason = f"Failure score {prediction.p:.2f} ({self.d.seen(outcome.camera)})."
            self.d.paused_print.dialog_open = True  # before: the UI shows it as it arrives
            with contextlib.suppress(MoonrakerError):
                await self.d.actions.gcode(failure_dialog(
                    reason, saved.link if saved else "", self.d.macros_available,
                    heaters_off=any(a in HEATER_ACTIONS for a in cfg.on_failure)))
        for result in results:
            if not result.ok:
                with contextlib.suppress(MoonrakerError):
                    await self.d.actions.say(f"could not {result.action}: {result.error}",
                                           error=True)

    async def save_snapshot(self, jpeg: bytes, prediction: Prediction,
                             level: str, camera: str = "") -> SavedSnapshot | None:
        if not self.d.config.snapshots.enabled or not jpeg:
            return None
        summary = self.d.session.summary(camera) if camera in self.d.session.tracks else ""
        seen = f"camera {camera}  " if self.d.several and camera else ""
        caption = f"failwatch {level}: {seen}p={prediction.p:.2f}  {summary}"
        name = f"{level}-{self.d.session.print_id or 'test'}" + (f"-{camera}" if camera else "")
        mask = next((w.mask for w in self.d.watches if w.name == camera), ())
        saved = await asyncio.to_thread(self.d.snapshots.save, jpeg, prediction.detections,
                                        caption, name, mask=mask)
        if saved is not None:
            self.d.last_snapshot = str(saved.path)
        return saved

    def _notify_others(self, level: str, message: str, prediction: Prediction, jpeg: bytes,
                       saved: SavedSnapshot | None, camera: str = "") -> None:
        """Webhooks and Apprise, in the background: they never hold up the printer."""
        if self.d.notifier is None or not self.d.notifier.enabled:
            return
        image = saved.path.read_bytes() if saved and saved.path.exists() else jpeg
        event = Event(
            printer=self.d.config.notify.printer_name, print_id=self.d.session.print_id,
            filename=str(self.d.status.get("print_stats", {}).get("filename", "")),
            level=level, message=message, p=prediction.p,
            stats=self.d.session.track(camera).stats.to_dict(),
            image=image, image_path=str(saved.path) if saved else "",
            image_link=saved.link if saved else "")
        self.d.spawn(self.d.notifier.send(event), "notify")

    async def _delayed_heaters(self, actions: list[str], resume_count: int) -> None:
        await asyncio.sleep(self.d.config.actions.heaters_off_delay)
        if self.d.session.print_state != "paused" or self.d.session.resume_count != resume_count:
            log.info("heaters left on: the print was resumed or ended within "
                     "heaters_off_delay")
            return
        heaters = self.d.status.get("heaters", {}).get("available_heaters")
        message = (f"print still paused after {self.d.config.actions.heaters_off_delay:g} s: "
                   f"{describe(actions)}.")
        await self.d.actions.run([*actions, "notify"], message, available_heaters=heaters)

