"""What the macros' commands do: FAILWATCH_STATUS, _ENABLE, _SENSITIVITY, _TEST, _RESUME...

:mod:`failwatch_moonraker.printer.control` parses what the printer sent; this
runs it against the printer's daemon and returns the line for the console.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from failwatch_moonraker.camera.mask import drop_masked, format_mask
from failwatch_moonraker.camera.snapshot import CameraError
from failwatch_moonraker.core.session import ACTIVE_STATES
from failwatch_moonraker.predictors import PredictorError, engine_summary
from failwatch_moonraker.printer.control import Command, CommandError, parse_command
from failwatch_moonraker.printer.moonraker import MoonrakerError

if TYPE_CHECKING:
    from failwatch_moonraker.daemon import Daemon
    from failwatch_moonraker.pipeline import CameraWatch

log = logging.getLogger("failwatch")

TEST_PRINT_ID = "failwatch-test"


class MacroCommands:
    """The remote method ``failwatch_command`` of one printer's daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon

    async def handle(self, params: Any) -> None:
        try:
            command = parse_command(params)
        except CommandError as exc:
            log.warning("command refused: %s", exc)
            with contextlib.suppress(MoonrakerError):
                await self.d.actions.say(str(exc), error=True)
            return
        log.info("command from the printer: %s%s", command.name,
                 f" {command.value:g}" if command.value is not None else "")
        try:
            reply = await self.run(command)
        except MoonrakerError as exc:
            log.warning("command %s failed: %s", command.name, exc)
            return
        if reply:
            with contextlib.suppress(MoonrakerError):
                await self.d.actions.say(reply)

    async def run(self, command: Command) -> str:
        if command.name == "status":
            return self.status_text()
        if command.name in ("enable", "disable"):
            self.d.settings.enabled = command.name == "enable"
            await self.d.settings_changed()
            self.d.wake.set()
            return ("watching enabled" if self.d.settings.enabled else
                    "watching DISABLED until FAILWATCH_ENABLE (also after restarts)")
        if command.name == "ignore_print":
            if not self.d.session.ignore_print():
                return "no print is running: nothing to ignore"
            await self.d.settings_changed()
            return (f"not watching this print ({self.d.session.print_id}) any more; the next "
                    "print is watched again")
        if command.name == "sensitivity":
            assert command.value is not None
            old = self.d.session.params.policy.sensitivity
            self.d.settings.sensitivity = command.value
            self.d.session.params = self.d.params()
            await self.d.settings_changed()
            return f"sensitivity {command.value:g} (was {old:g}); kept across restarts"
        if command.name == "test":
            return await self.test_frame()
        if command.name in ("resume", "resume_ignore"):
            return await self.resume(ignore=command.name == "resume_ignore")
        raise CommandError(command.name)

    async def resume(self, *, ignore: bool) -> str:
        """FAILWATCH_RESUME and the dialog's Resume buttons: reheat, wait, RESUME."""
        heaters = self.d.status.get("heaters", {}).get("available_heaters")
        plan = await self.d.paused_print.plan(heaters, self.d.session.print_id)
        if plan is None:
            return "the print is not paused: nothing to resume"
        message = plan.message()
        if self.d.response.heaters_off is not None and not self.d.response.heaters_off.done():
            # it would queue behind the reheat and turn the heaters off once resumed
            self.d.response.heaters_off.cancel()
            log.info("heaters left on: resuming before heaters_off_delay")
        if ignore and self.d.session.ignore_print():
            await self.d.settings_changed()
            message = f"not watching this print ({self.d.session.print_id}) any more, {message}"
        try:
            await self.d.paused_print.resume(plan, message)
        except MoonrakerError as exc:
            log.warning("resume failed: %s", exc)
            return f"could not resume: {exc.message}"
        return ""

    def status_text(self) -> str:
        s = self.d.session
        head = "enabled" if self.d.settings.enabled else "DISABLED (FAILWATCH_ENABLE to watch)"
        sens = f"sensitivity {s.params.policy.sensitivity:g}"
        if s.print_id is None or s.print_state not in ACTIVE_STATES:
            what = "idle: no print running"
        elif s.ignored:
            what = f"ignoring print {s.print_id} (FAILWATCH_IGNORE_PRINT)"
        elif self.d.several:
            what = (f"print {s.print_id} {s.print_state}: level {s.level}; " + "; ".join(
                f"camera {t.name} {t.level}, {s.summary(t.name)}" for t in s.tracks.values()))
        else:
            what = (f"print {s.print_id} {s.print_state}: level {s.level}, "
                    f"{s.summary()}")
        cameras = "; ".join(
            (f"camera {w.name} " if w.name else "camera ") +
            (w.source.url if w.source else "not found") +
            (f" (mask {format_mask(w.mask)})" if w.mask else "")
            for w in self.d.watches) or "no camera"
        engine = engine_summary(self.d.predictor)
        return f"{head}, {what}; {sens}; {cameras}" + (f"; engine {engine}" if engine else "")

    async def test_frame(self) -> str:
        """FAILWATCH_TEST: one snapshot per camera, one prediction each, shown to the user;
        no statistics."""
        if not self.d.watches or self.d.scorer is None:
            return "test: not ready yet"
        lines = [await self._test_camera(watch) for watch in self.d.watches]
        return lines[0] if len(lines) == 1 else "test: " + "; ".join(
            line.removeprefix("test: ") for line in lines)

    async def _test_camera(self, watch: CameraWatch) -> str:
        assert self.d.scorer is not None
        head = f"test: camera {watch.name}: " if self.d.several else "test: "
        try:
            frame = await watch.camera.frame()
        except CameraError as exc:
            return f"{head}no snapshot: {exc}"
        jpeg = frame.jpeg
        context = self.d.context(watch)
        try:
            answer = await self.d.scorer.ask(jpeg, TEST_PRINT_ID, context)
        except PredictorError as exc:
            return (f"{head}snapshot OK ({len(jpeg) // 1024} KiB) but the predictor failed: "
                    f"{exc}")
        prediction = drop_masked(answer, watch.mask, frame.size)
        dropped = len(answer.detections) - len(prediction.detections)
        masked = (f", masked {format_mask(watch.mask)}" +
                  (f" ({dropped} detection(s) in it dropped)" if dropped else "")) \
            if watch.mask else ""
        saved = await self.d.response.save_snapshot(jpeg, prediction, "test", watch.name)
        link = f"; snapshot: {saved.link}" if saved else ""
        return (f"{head}p={prediction.p:.3f} with {len(prediction.detections)} detection(s) "
                f"from a {len(jpeg) // 1024} KiB snapshot{masked}{link}")

