"""The watching daemon: Moonraker state in, frames through the predictor, actions out.

All decisions live in :mod:`failwatch_moonraker.core.session`; this module only
moves data between the edges and keeps the schedule. Rules it enforces:
frames are taken only while ``print_stats.state`` is ``printing`` and the
print's id is known; a camera, predictor or network fault skips the frame
and backs off, and is never evidence of a failure; nothing here blocks the
event loop (file writes and image work run in threads).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from failwatch_moonraker import __version__
from failwatch_moonraker.camera.annotate import SavedSnapshot, SnapshotStore
from failwatch_moonraker.camera.mask import drop_masked, format_mask
from failwatch_moonraker.camera.snapshot import (
    Camera,
    CameraError,
    CameraSource,
    pick_webcam,
    resolve_url,
    source_from_webcam,
    web_base_from_moonraker,
)
from failwatch_moonraker.cameras import cameras_of
from failwatch_moonraker.config import LOCAL_BACKENDS, CameraConfig, Config
from failwatch_moonraker.core.policy import Level
from failwatch_moonraker.core.session import (
    ACTIVE_STATES,
    FrameOutcome,
    SessionParams,
    WatchSession,
    params_from_detection,
)
from failwatch_moonraker.notify import Event, Notifier
from failwatch_moonraker.pipeline import CameraWatch, Judged, Pipeline, Scorer, predict_context
from failwatch_moonraker.predictors import (
    PredictContext,
    Prediction,
    Predictor,
    PredictorError,
    create_predictor,
    engine_summary,
    predictor_hook,
    start_predictor,
)
from failwatch_moonraker.printer.actions import (
    HEATER_ACTIONS,
    ActionRunner,
    describe,
    failure_dialog,
    respond_script,
    split_delayed,
)
from failwatch_moonraker.printer.control import (
    REMOTE_METHOD,
    STATE_MACRO,
    Command,
    CommandError,
    Settings,
    parse_command,
)
from failwatch_moonraker.printer.moonraker import (
    MoonrakerClient,
    MoonrakerError,
    console_via_unix_socket,
)
from failwatch_moonraker.printer.paused import PausedPrint
from failwatch_moonraker.secrets import register as register_secrets
from failwatch_moonraker.secrets import secret_values
from failwatch_moonraker.store import StateStore, state_problems
from failwatch_moonraker.tools.record import Recorder

log = logging.getLogger("failwatch")

KLIPPY_POLL = 2.0
SAVE_EVERY = 5.0
STATUS_EVERY = 60.0
TIMELAPSE_MACRO = "gcode_macro TIMELAPSE_TAKE_FRAME"
DB_NAMESPACE = "failwatch"
TEST_PRINT_ID = "failwatch-test"


def session_params(config: Config) -> SessionParams:
    return params_from_detection(config.detection)


def merge_status(status: dict[str, dict[str, Any]], diff: dict[str, Any]) -> None:
    """Fold a ``notify_status_update`` diff into the full status, in place."""
    for name, fields in diff.items():
        if isinstance(fields, dict):
            status.setdefault(name, {}).update(fields)


async def cancel_and_wait(tasks: list[asyncio.Task[Any] | None], timeout: float = 1.0) -> None:
    """Cancel tasks and wait for them; cancel again any that swallowed it."""
    pending = {t for t in tasks if t is not None and not t.done()}
    for _ in range(3):
        if not pending:
            return
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=timeout)
    for task in pending:
        log.error("shutdown: task %s did not stop", task.get_name())


class Daemon:
    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time,
                 http: aiohttp.ClientSession | None = None) -> None:
        self.config = config
        register_secrets(secret_values(config))  # scrubbed from the console and logs
        self.clock = clock
        self._shared_http = http  # a farm shares one HTTP session between its printers
        self.store = StateStore(config.state.path)
        saved = self.store.load()
        raw_session = saved.get("session")
        self.settings = Settings.from_dict(saved.get("settings"))
        damaged = state_problems(saved)
        self.camera_configs = cameras_of(config)
        self.session = WatchSession.from_dict(
            self._params(), raw_session if isinstance(raw_session, dict) else {}, damaged,
            cameras=[c.name for c in self.camera_configs])
        if damaged:  # reset to valid values; the file as it was is kept aside
            self.store.keep_damaged(damaged)
        self.recorder = (Recorder(config.record, self.session, config.notify.printer_name)
                         if config.record.enabled else None)
        self.status: dict[str, dict[str, Any]] = {}
        self.klippy_ready = False
        self.print_verified = False
        self.client = MoonrakerClient(
            config.moonraker.url,
            api_key=config.moonraker.api_key,
            version=__version__,
            on_notification=self._on_notification,
            on_connect=self._on_connect,
            on_disconnect=self._on_disconnect,
            on_auth_failure=self._on_auth_failure,
        )
        self.actions = ActionRunner(self.client, config.actions.failure_gcode,
                                    on_pause_queued=self._pause_queued,
                                    wait_paused=self._wait_paused)
        self.paused_print = PausedPrint.from_dict(self.actions, saved.get("pause"))
        self._pause_busy = ""
        self._heaters_off: asyncio.Task[Any] | None = None  # heaters_off_delay pending
        self._paused_seen = asyncio.Event()  # print_stats says paused
        self.pipeline: Pipeline | None = None  # the cameras and the predictor, made in run()
        self.frames = 0
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._klippy_poller: asyncio.Task[None] | None = None
        self._resolver: asyncio.Task[None] | None = None
        self._last_save = 0.0
        self._save_lock = asyncio.Lock()
        self.macros_available = False
        self.snapshots = SnapshotStore(config.snapshots.path, config.snapshots.max_count,
                                       config.snapshots.max_size, config.snapshots.public_url,
                                       max_pixels=max(c.max_pixels for c in self.camera_configs))
        self.notifier: Notifier | None = None
        self.last_snapshot = ""
        self.last_frame_at: float | None = None
        self._last_status = 0.0

    @property
    def watches(self) -> list[CameraWatch]:
        return self.pipeline.watches if self.pipeline is not None else []

    @property
    def scorer(self) -> Scorer | None:
        return self.pipeline.scorer if self.pipeline is not None else None

    @property
    def lateness(self) -> list[float]:
        return self.pipeline.lateness if self.pipeline is not None else []

    @property
    def several(self) -> bool:
        return len(self.camera_configs) > 1

    @property
    def predictor(self) -> Predictor | None:
        return self.scorer.predictor if self.scorer is not None else None

    @predictor.setter
    def predictor(self, predictor: Predictor) -> None:  # benches put in stand-ins
        assert self.scorer is not None
        self.scorer.predictor = predictor

    @property
    def camera(self) -> Camera | None:
        """The first camera (the only one, unless [camera NAME] sections name more)."""
        return self.watches[0].camera if self.watches else None

    @camera.setter
    def camera(self, camera: Camera) -> None:
        self.watches[0].camera = camera

    def wire(self, http: aiohttp.ClientSession) -> None:
        """Cameras and predictor on ``http``; run() does it, benches call it themselves."""
        watches = []
        for cfg in self.camera_configs:
            camera = Camera(http, cfg.timeout, cfg.max_size, max_pixels=cfg.max_pixels,
                            mask=cfg.mask)
            camera.source = self._configured_source(cfg)
            watches.append(CameraWatch(cfg, camera))
        predictor = create_predictor(self.config.predictor, http,
                                     detection=self.config.detection,
                                     printer_name=self.config.name)
        interval = self.config.detection.interval
        scorer = Scorer(predictor, self.config.predictor.backend, interval, self._say_error)
        self.pipeline = Pipeline(watches, scorer, self.session, interval,
                                 can_watch=self.can_watch, context=self._context,
                                 on_judged=self._judged, clock=self.clock, wake=self._wake)

    def _params(self) -> SessionParams:
        """The config's parameters with the user's changes from the printer on top."""
        params = session_params(self.config)
        if self.settings.sensitivity is not None:
            params = dataclasses.replace(
                params, policy=dataclasses.replace(params.policy,
                                                   sensitivity=self.settings.sensitivity))
        return params

    # -- life cycle ----------------------------------------------------------

    async def run(self) -> None:
        """Watch until :meth:`stop`; state is flushed on the way out."""
        timeout = aiohttp.ClientTimeout(total=None)
        async with contextlib.AsyncExitStack() as own:
            http = self._shared_http
            if http is None:
                http = await own.enter_async_context(aiohttp.ClientSession(timeout=timeout))
            self.wire(http)
            assert self.scorer is not None
            await start_predictor(self.scorer.predictor)
            n = self.config.notify
            self.notifier = Notifier(http, n.webhook_urls, n.apprise_urls, n.timeout,
                                     n.include_image)
            if not self.settings.enabled:
                log.info("watching is DISABLED from the printer (FAILWATCH_ENABLE turns it on)")
            if self.settings.sensitivity is not None:
                log.info("sensitivity %g, set from the printer (failwatch.cfg says %g)",
                         self.settings.sensitivity, self.config.detection.sensitivity)
            log.info("failwatch %s starting: Moonraker %s, predictor %s (%s), one frame "
                     "every %g s while printing", __version__, self.config.moonraker.url,
                     self.config.predictor.backend,
                     "on this host" if self.config.predictor.backend in LOCAL_BACKENDS
                     else self.config.predictor.url,
                     self.config.detection.interval)
            if self.several:
                log.info("cameras: %s, each with its own statistics",
                         ", ".join(c.name for c in self.camera_configs))
            client_task = asyncio.create_task(self.client.run(), name="moonraker")
            assert self.pipeline is not None
            watch_task = asyncio.create_task(self.pipeline.run(), name="watch")
            try:
                await self._stop.wait()
            finally:
                # Stop watching and acting first, then drop Moonraker.
                await cancel_and_wait([watch_task, *self._tasks, self._klippy_poller,
                                       self._resolver])
                await self._set_online(False)
                await cancel_and_wait([client_task])
                await self.client.close()
                await self.scorer.predictor.close()
                await self.save(force=True)
                if self.recorder is not None:
                    await self.recorder.close()
                log.info("failwatch stopped; statistics saved to %s", self.store.path)

    def stop(self) -> None:
        self._stop.set()

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- Moonraker side ----------------------------------------------------

    async def _on_connect(self) -> None:
        # Registrations die with the socket: register on every connect.
        await self.client.call("connection.register_remote_method",
                               {"method_name": REMOTE_METHOD})
        if self._discovered():
            await self._discover_camera()
        info = await self.client.call("server.info")
        if isinstance(info, dict) and info.get("klippy_state") == "ready":
            await self._subscribe()
        else:
            state = info.get("klippy_state") if isinstance(info, dict) else "?"
            log.info("moonraker: Klippy is %s; waiting for it to be ready", state)
            self._start_klippy_poller()

    def _on_disconnect(self) -> None:
        self._klippy_lost()

    async def _on_auth_failure(self, message: str) -> None:
        sent = await console_via_unix_socket(
            self.config.moonraker.unix_socket, respond_script(message, error=True))
        if not sent:
            log.debug("moonraker: could not reach the console through %s",
                      self.config.moonraker.unix_socket)

    def _klippy_lost(self) -> None:
        self.klippy_ready = False
        self.print_verified = False
        self._wake.set()

    def _start_klippy_poller(self) -> None:
        if self._klippy_poller is None or self._klippy_poller.done():
            self._klippy_poller = asyncio.create_task(self._poll_klippy(), name="klippy-poll")

    async def _poll_klippy(self) -> None:
        """Klippy coming back in ``error`` sends no notification: ask until ready."""
        while not self.klippy_ready:
            await asyncio.sleep(KLIPPY_POLL)
            try:
                info = await self.client.call("server.info")
            except MoonrakerError:
                continue
            if self.klippy_ready:
                return  # notify_klippy_ready got there first
            if isinstance(info, dict) and info.get("klippy_state") == "ready":
                try:
                    await self._subscribe()
                except MoonrakerError as exc:
                    log.debug("moonraker: subscribe failed (%s); will retry", exc)

    def subscription(self, available: list[str] | None = None) -> dict[str, Any]:
        objects: dict[str, Any] = {
            "print_stats": ["state", "filename", "total_duration", "print_duration"],
            "webhooks": ["state", "state_message"],
            "heaters": ["available_heaters"],
            "display_status": ["progress"],  # for predictors that send the progress
            "pause_resume": ["is_paused"],  # confirms a PAUSE that waited in line
        }
        if available is not None and TIMELAPSE_MACRO in available:
            objects[TIMELAPSE_MACRO] = ["is_paused"]
        return objects

    async def _subscribe(self) -> None:
        """(Re)subscribe; Moonraker drops subscriptions whenever Klippy goes away."""
        listed = await self.client.call("printer.objects.list")
        available = listed.get("objects") if isinstance(listed, dict) else None
        result = await self.client.call(
            "printer.objects.subscribe", {"objects": self.subscription(available)})
        status = result.get("status", {}) if isinstance(result, dict) else {}
        self.status = {k: dict(v) for k, v in status.items() if isinstance(v, dict)}
        self.klippy_ready = True
        self.print_verified = False
        self.macros_available = available is not None and f"gcode_macro {STATE_MACRO}" in available
        log.info("moonraker: Klippy ready; print state %s",
                 self.status.get("print_stats", {}).get("state", "?"))
        if not self.macros_available:
            log.info("macros: failwatch_macros.cfg is not included in printer.cfg; the "
                     "FAILWATCH_* macros and dialog buttons are not available")
        self._apply_status()
        await self._set_online(True)
        self._post_status(force=True)

    def _on_notification(self, method: str, params: Any) -> None:
        if method == "notify_status_update":
            if isinstance(params, list) and params and isinstance(params[0], dict):
                merge_status(self.status, params[0])
                if "print_stats" in params[0] or TIMELAPSE_MACRO in params[0] or \
                        "pause_resume" in params[0]:
                    self._apply_status()
        elif method == "notify_klippy_ready":
            self._spawn(self._subscribe_quietly(), "subscribe")
        elif method in ("notify_klippy_disconnected", "notify_klippy_shutdown"):
            log.warning("moonraker: Klippy %s; watching pauses until it is ready",
                        "disconnected" if method.endswith("disconnected") else "shut down")
            self._klippy_lost()
            self._start_klippy_poller()
        elif method == REMOTE_METHOD:
            self._spawn(self._on_command(params), "command")
        elif method == "notify_webcams_changed" and self._discovered():
            self._spawn(self._discover_camera(), "webcams")

    async def _subscribe_quietly(self) -> None:
        try:
            await self._subscribe()
        except MoonrakerError as exc:
            log.warning("moonraker: could not subscribe after Klippy came back: %s", exc)
            self._start_klippy_poller()

    def _apply_status(self) -> None:
        if not self.klippy_ready:
            return
        stats = self.status.get("print_stats", {})
        state = str(stats.get("state", "unknown"))
        parked = bool(self.status.get(TIMELAPSE_MACRO, {}).get("is_paused", False))
        previous = self.session.print_state
        event = self.session.on_print_state(state, self.clock(), parked=parked)
        if state == "paused" or self.status.get("pause_resume", {}).get("is_paused") is True:
            self._paused_seen.set()
        if (previous in ("paused", "unknown") and state == "printing") or \
                state not in ACTIVE_STATES:
            # resumed or ended, from any button: undo the dialog and the idle timeout
            undo = self.paused_print.leave("resumed" if state == "printing" else state)
            if undo is not None:
                self._spawn(undo, "left-pause")
                self._spawn(self.save(force=True), "save")
        if event == "resumed":
            log.info("print resumed by the user; no automatic pause for %g s",
                     self.config.detection.resume_cooldown)
        elif event == "ended":
            log.info("print %s; statistics of this print reset", state)
            self._spawn(predictor_hook(self.predictor, "print_ended"), "print-ended")
            self._spawn(self.save(force=True), "save")
            self._post_status(force=True)
        if state in ACTIVE_STATES and (not self.print_verified or
                                       (state == "printing" and previous != "printing")):
            self._resolve_print()
        elif state not in ACTIVE_STATES and self.session.print_id is not None:
            self.session.end_print()  # ended while failwatch was away
            self._spawn(predictor_hook(self.predictor, "print_ended"), "print-ended")
            self._spawn(self.save(force=True), "save")
        self._wake.set()

    def _resolve_print(self) -> None:
        self.print_verified = False
        if self._resolver is None or self._resolver.done():
            self._resolver = asyncio.create_task(self._resolve_print_id(), name="print-id")

    async def _resolve_print_id(self) -> None:
        """Moonraker's history job id of the running print (fallback: file + start)."""
        stats = self.status.get("print_stats", {})
        filename = str(stats.get("filename") or "")
        job_id = None
        for _ in range(10):
            try:
                result = await self.client.call(
                    "server.history.list", {"limit": 1, "order": "desc"})
            except MoonrakerError as exc:
                log.debug("history: %s", exc)
                result = None
            jobs = result.get("jobs") if isinstance(result, dict) else None
            if jobs and isinstance(jobs[0], dict):
                job = jobs[0]
                same_file = not filename or job.get("filename") == filename
                status = job.get("status")
                # Moonraker marks the running job "interrupted" when it restarts
                # mid-print; the print goes on, and so does our print.
                resumed = status in ("interrupted", "server_exit") and \
                    str(job.get("job_id")) == self.session.print_id
                if same_file and (status == "in_progress" or resumed):
                    job_id = str(job.get("job_id"))
                    break
            await asyncio.sleep(0.3)
        if job_id is None:
            duration = float(stats.get("total_duration") or 0.0)
            job_id = f"{filename}@{int(self.clock() - duration)}"
            log.info("history: no job for %s; using %s as the print id", filename, job_id)
        if self.session.print_state not in ACTIVE_STATES:
            return
        self._spawn(predictor_hook(self.predictor, "print_started"), "print-started")
        if self.session.begin_print(job_id):
            if self.pipeline is not None:  # faults count afresh, with quick retries
                self.pipeline.new_print()
            log.info("watching print %s (job %s)", filename or "?", job_id)
            self._post_status(force=True)
        elif self.session.ignored:
            log.info("print %s (job %s) is ignored (FAILWATCH_IGNORE_PRINT): not watching it; "
                     "the next print is watched again", filename or "?", job_id)
        else:
            log.info("watching print %s (job %s) again; its statistics carry on (frame %d)",
                     filename or "?", job_id, self.session.stats.prediction_num)
        self.print_verified = True
        self._wake.set()
        await self.save(force=True)

    def _discovered(self) -> bool:
        """Some camera comes from Moonraker's webcam list (no snapshot_url of its own)."""
        return any(not c.snapshot_url for c in self.camera_configs)

    async def _discover_camera(self) -> None:
        try:
            result = await self.client.call("server.webcams.list")
        except MoonrakerError as exc:
            log.warning("camera: cannot read Moonraker's webcam list: %s", exc)
            return
        webcams = result.get("webcams", []) if isinstance(result, dict) else []
        base = web_base_from_moonraker(self.config.moonraker.url)
        for watch in self.watches:
            c = watch.config
            if c.snapshot_url:
                continue
            what = f"camera {c.name}" if c.name else "camera"
            cam = pick_webcam(webcams, c.webcam)
            if cam is None:
                wanted = f"named '{c.webcam}'" if c.webcam else "enabled with a snapshot URL"
                section = f"[camera {c.name}]" if c.name else "[camera]"
                log.warning("%s: Moonraker has no webcam %s; set %s snapshot_url in "
                            "failwatch.cfg or add one in Mainsail/Fluidd", what, wanted, section)
                continue
            source = source_from_webcam(cam, base, c.flip_horizontal, c.flip_vertical,
                                        c.rotation)
            if source != watch.camera.source:
                watch.camera.source = source
                log.info("%s: using webcam '%s' at %s", what, source.name, source.url)

    def _configured_source(self, c: CameraConfig) -> CameraSource | None:
        if not c.snapshot_url:
            return None
        return CameraSource(
            url=resolve_url(c.snapshot_url, web_base_from_moonraker(self.config.moonraker.url)),
            name=c.name,
            flip_horizontal=bool(c.flip_horizontal),
            flip_vertical=bool(c.flip_vertical),
            rotation=c.rotation or 0,
        )

    # -- the frame loop ----------------------------------------------------

    def can_watch(self) -> bool:
        return (self.settings.enabled and self.klippy_ready and self.print_verified
                and self.session.watching)

    async def frame(self) -> float:
        """One frame per camera (benches drive it by hand); returns the backoff."""
        assert self.pipeline is not None
        return await self.pipeline.frame()

    def _context(self, watch: CameraWatch) -> PredictContext | None:
        if self.scorer is None or not self.scorer.needs_context:
            return None
        return predict_context(self.config.name, self.session.print_state, self.status,
                               watch.source)

    async def _judged(self, judged: Judged) -> None:
        """A camera's frame counted: record it, say it, act on the printer's verdict."""
        outcome, prediction, jpeg = judged.outcome, judged.prediction, judged.jpeg
        self.frames += 1
        self.last_frame_at = self.clock()
        if self.recorder is not None:  # queues only; the writing happens in a thread
            self.recorder.frame(self.last_frame_at, prediction, outcome, self.session,
                                self.scorer.predictor.name if self.scorer else "", jpeg,
                                self.status.get("print_stats", {}))
        self._log_frame(outcome, prediction)
        if outcome.changed:
            self._spawn(self._level_event(outcome), "level-event")
        if outcome.fire is not None:
            # In the background: a PAUSE queued behind Klipper's M109 must not stop the
            # frames (the session fires at most once per print, so nothing doubles).
            self._spawn(self._fire(outcome, prediction, jpeg), "actions")
            await self.save(force=True)
        else:
            await self.save()
        self._post_status(force=outcome.changed)

    async def _say_error(self, message: str) -> None:
        with contextlib.suppress(MoonrakerError):
            await self.actions.say(message, error=True)

    def seen(self, camera: str) -> str:
        """A camera's statistics for messages, named when the printer has several."""
        head = f"camera {camera}: " if self.several and camera else ""
        return head + self.session.summary(camera)

    def _log_frame(self, outcome: FrameOutcome, prediction: Prediction) -> None:
        if outcome.changed:
            log.info("level %s: %s", outcome.level, self.seen(outcome.camera))
        else:
            log.debug("frame: level %s %s", outcome.level, self.seen(outcome.camera))
        if outcome.note and outcome.level is not Level.OK and outcome.fire is None:
            log.debug("no action: %s", outcome.note)

    async def _fire(self, outcome: FrameOutcome, prediction: Prediction, jpeg: bytes) -> None:
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

    async def _pause_queued(self) -> None:
        """The PAUSE waits in line behind Klipper's G-code lock: say so now in the log (the
        console can only show it once Klipper's wait is over)."""
        heaters = self.status.get("heaters", {}).get("available_heaters")
        reason = await self.paused_print.why_busy(heaters)
        log.warning("pause requested; %s, it pauses when the wait ends", reason)
        self._pause_busy = reason

    async def _wait_paused(self) -> None:
        await self._paused_seen.wait()

    async def _fire_now(self, outcome: FrameOutcome, prediction: Prediction,
                        jpeg: bytes) -> None:
        """Act first (the pause must not wait for pictures), then tell the user."""
        cfg = self.config.actions
        heaters = self.status.get("heaters", {}).get("available_heaters")
        failure = outcome.fire is Level.FAILURE
        if failure:
            now_actions, later = split_delayed(cfg.on_failure, cfg.heaters_off_delay)
            done = describe(now_actions, cfg.heaters_off_delay, later) or "no action configured"
            message = f"Print failure detected ({self.seen(outcome.camera)}): {done}."
        else:
            now_actions, later = list(cfg.on_warning), []
            would_pause = "pause" in cfg.on_failure and not self.session.failure_fired
            tail = "; failwatch pauses the print if it gets worse" if would_pause else ""
            message = f"Possible print failure ({self.seen(outcome.camera)}){tail}."
        log.warning("%s", message)
        pausing = "pause" in now_actions
        if pausing:
            if self.session.print_state != "paused":
                self._paused_seen.clear()
            self._pause_busy = ""
            await self.paused_print.remember(heaters, self.session.print_id)
        results = await self.actions.run([a for a in now_actions if a != "notify"], message,
                                         available_heaters=heaters)
        if later:
            self._heaters_off = self._spawn(self._delayed_heaters(later,
                                                                  self.session.resume_count),
                                            "heaters-off")
        paused = any(r.action == "pause" and r.ok for r in results)
        waited = max((r.waited for r in results if r.action == "pause"), default=0.0)
        if paused and waited:
            log.warning("paused after waiting %.0f s in line (%s)", waited,
                        (self._pause_busy or "Klipper is busy").replace(" is ", " was "))
            message += (f" The pause was requested while "
                        f"{(self._pause_busy or 'Klipper is busy').replace(' is ', ' was ')} "
                        f"and ran when the wait ended, {waited:.0f} s later.")
        elif paused:
            log.info("paused")
        if paused:
            try:
                held = await self.paused_print.hold_position(cfg.paused_idle_timeout)
            except MoonrakerError as exc:
                log.error("idle timeout: could not raise it: %s", exc)
                held = ""
            if held:
                message += f" {held[0].upper()}{held[1:]}."
            await self.save(force=True)
        saved = await self._save_snapshot(jpeg, prediction, str(outcome.fire), outcome.camera)
        link = f" Snapshot: {saved.link}" if saved else ""
        if "notify" in now_actions:
            try:
                await self.actions.say(message + link, error=failure)
            except MoonrakerError as exc:
                log.error("action notify failed: %s", exc)
            self._notify_others(str(outcome.fire), message, prediction, jpeg, saved,
                                outcome.camera)
        if paused and self.session.print_state in ("paused", "printing"):
            reason = f"Failure score {prediction.p:.2f} ({self.seen(outcome.camera)})."
            self.paused_print.dialog_open = True  # before: the UI shows it as it arrives
            with contextlib.suppress(MoonrakerError):
                await self.actions.gcode(failure_dialog(
                    reason, saved.link if saved else "", self.macros_available,
                    heaters_off=any(a in HEATER_ACTIONS for a in cfg.on_failure)))
        for result in results:
            if not result.ok:
                with contextlib.suppress(MoonrakerError):
                    await self.actions.say(f"could not {result.action}: {result.error}",
                                           error=True)

    async def _save_snapshot(self, jpeg: bytes, prediction: Prediction,
                             level: str, camera: str = "") -> SavedSnapshot | None:
        if not self.config.snapshots.enabled or not jpeg:
            return None
        summary = self.session.summary(camera) if camera in self.session.tracks else ""
        seen = f"camera {camera}  " if self.several and camera else ""
        caption = f"failwatch {level}: {seen}p={prediction.p:.2f}  {summary}"
        name = f"{level}-{self.session.print_id or 'test'}" + (f"-{camera}" if camera else "")
        mask = next((w.mask for w in self.watches if w.name == camera), ())
        saved = await asyncio.to_thread(self.snapshots.save, jpeg, prediction.detections,
                                        caption, name, mask=mask)
        if saved is not None:
            self.last_snapshot = str(saved.path)
        return saved

    def _notify_others(self, level: str, message: str, prediction: Prediction, jpeg: bytes,
                       saved: SavedSnapshot | None, camera: str = "") -> None:
        """Webhooks and Apprise, in the background: they never hold up the printer."""
        if self.notifier is None or not self.notifier.enabled:
            return
        image = saved.path.read_bytes() if saved and saved.path.exists() else jpeg
        event = Event(
            printer=self.config.notify.printer_name, print_id=self.session.print_id,
            filename=str(self.status.get("print_stats", {}).get("filename", "")),
            level=level, message=message, p=prediction.p,
            stats=self.session.track(camera).stats.to_dict(),
            image=image, image_path=str(saved.path) if saved else "",
            image_link=saved.link if saved else "")
        self._spawn(self.notifier.send(event), "notify")

    # -- status for UIs ------------------------------------------------------

    def status_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.settings.enabled,
            "watching": self.can_watch(),
            "print_id": self.session.print_id,
            "ignored": self.session.ignored,
            "level": str(self.session.level),
            "last_p": self.session.stats.p,
            "stats": self.session.stats.to_dict(),
            "sensitivity": self.session.params.policy.sensitivity,
            "last_snapshot": self.last_snapshot,
            "last_frame_at": self.last_frame_at,
            "updated_at": self.clock(),
            **({"camera": self.session.lead.name, "cameras": {
                t.name: {"level": str(t.level), "last_p": t.stats.p,
                         "stats": t.stats.to_dict(),
                         "url": w.source.url if w.source else ""}
                for t, w in zip(self.session.tracks.values(), self.watches, strict=False)}}
               if self.several else {}),
            **({"engine": facts()} if (facts := getattr(self.predictor, "engine_facts", None))
               else {}),
        }

    def _post_status(self, force: bool = False) -> None:
        """Moonraker's database, namespace failwatch: on changes, else once a minute."""
        now = time.monotonic()
        if not force and now - self._last_status < STATUS_EVERY:
            return
        if not self.client.ready.is_set() and not self.klippy_ready:
            return
        self._last_status = now
        self._spawn(self._post_status_now(), "status")

    async def _post_status_now(self) -> None:
        try:
            await self.client.call("server.database.post_item",
                                   {"namespace": DB_NAMESPACE, "key": "status",
                                    "value": self.status_dict()})
        except MoonrakerError as exc:
            log.debug("status: %s", exc)

    async def _level_event(self, outcome: FrameOutcome) -> None:
        track = self.session.track(outcome.camera)
        data = {"level": str(outcome.level), "print_id": self.session.print_id,
                "p": track.stats.p, "stats": track.stats.to_dict(),
                **({"camera": outcome.camera} if self.several else {})}
        try:
            await self.client.call("connection.send_event",
                                   {"event": "level_changed", "data": data})
        except MoonrakerError as exc:
            log.debug("event: %s", exc)

    async def _set_online(self, online: bool) -> None:
        """Tell the macros whether failwatch is there to answer them."""
        if not self.macros_available or not self.client.connected:
            return
        try:
            await self.client.call(
                "printer.gcode.script",
                {"script": f"SET_GCODE_VARIABLE MACRO={STATE_MACRO} VARIABLE=online "
                           f"VALUE={online}"}, timeout=0.5 if not online else 10.0)
        except MoonrakerError as exc:
            log.debug("macros: could not set online=%s: %s", online, exc)

    # -- commands from the macros ----------------------------------------------

    async def _on_command(self, params: Any) -> None:
        try:
            command = parse_command(params)
        except CommandError as exc:
            log.warning("command refused: %s", exc)
            with contextlib.suppress(MoonrakerError):
                await self.actions.say(str(exc), error=True)
            return
        log.info("command from the printer: %s%s", command.name,
                 f" {command.value:g}" if command.value is not None else "")
        try:
            reply = await self._run_command(command)
        except MoonrakerError as exc:
            log.warning("command %s failed: %s", command.name, exc)
            return
        if reply:
            with contextlib.suppress(MoonrakerError):
                await self.actions.say(reply)

    async def _run_command(self, command: Command) -> str:
        if command.name == "status":
            return self.status_text()
        if command.name in ("enable", "disable"):
            self.settings.enabled = command.name == "enable"
            await self._settings_changed()
            self._wake.set()
            return ("watching enabled" if self.settings.enabled else
                    "watching DISABLED until FAILWATCH_ENABLE (also after restarts)")
        if command.name == "ignore_print":
            if not self.session.ignore_print():
                return "no print is running: nothing to ignore"
            await self._settings_changed()
            return (f"not watching this print ({self.session.print_id}) any more; the next "
                    "print is watched again")
        if command.name == "sensitivity":
            assert command.value is not None
            old = self.session.params.policy.sensitivity
            self.settings.sensitivity = command.value
            self.session.params = self._params()
            await self._settings_changed()
            return f"sensitivity {command.value:g} (was {old:g}); kept across restarts"
        if command.name == "test":
            return await self.test_frame()
        if command.name in ("resume", "resume_ignore"):
            return await self._resume(ignore=command.name == "resume_ignore")
        raise CommandError(command.name)

    async def _resume(self, *, ignore: bool) -> str:
        """FAILWATCH_RESUME and the dialog's Resume buttons: reheat, wait, RESUME."""
        heaters = self.status.get("heaters", {}).get("available_heaters")
        plan = await self.paused_print.plan(heaters, self.session.print_id)
        if plan is None:
            return "the print is not paused: nothing to resume"
        message = plan.message()
        if self._heaters_off is not None and not self._heaters_off.done():
            # it would queue behind the reheat and turn the heaters off once resumed
            self._heaters_off.cancel()
            log.info("heaters left on: resuming before heaters_off_delay")
        if ignore and self.session.ignore_print():
            await self._settings_changed()
            message = f"not watching this print ({self.session.print_id}) any more, {message}"
        try:
            await self.paused_print.resume(plan, message)
        except MoonrakerError as exc:
            log.warning("resume failed: %s", exc)
            return f"could not resume: {exc.message}"
        return ""

    async def _settings_changed(self) -> None:
        await self.save(force=True)
        self._post_status(force=True)

    def status_text(self) -> str:
        s = self.session
        head = "enabled" if self.settings.enabled else "DISABLED (FAILWATCH_ENABLE to watch)"
        sens = f"sensitivity {s.params.policy.sensitivity:g}"
        if s.print_id is None or s.print_state not in ACTIVE_STATES:
            what = "idle: no print running"
        elif s.ignored:
            what = f"ignoring print {s.print_id} (FAILWATCH_IGNORE_PRINT)"
        elif self.several:
            what = (f"print {s.print_id} {s.print_state}: level {s.level}; " + "; ".join(
                f"camera {t.name} {t.level}, {s.summary(t.name)}" for t in s.tracks.values()))
        else:
            what = (f"print {s.print_id} {s.print_state}: level {s.level}, "
                    f"{s.summary()}")
        cameras = "; ".join(
            (f"camera {w.name} " if w.name else "camera ") +
            (w.source.url if w.source else "not found") +
            (f" (mask {format_mask(w.mask)})" if w.mask else "")
            for w in self.watches) or "no camera"
        engine = engine_summary(self.predictor)
        return f"{head}, {what}; {sens}; {cameras}" + (f"; engine {engine}" if engine else "")

    async def test_frame(self) -> str:
        """FAILWATCH_TEST: one snapshot per camera, one prediction each, shown to the user;
        no statistics."""
        if not self.watches or self.scorer is None:
            return "test: not ready yet"
        lines = [await self._test_camera(watch) for watch in self.watches]
        return lines[0] if len(lines) == 1 else "test: " + "; ".join(
            line.removeprefix("test: ") for line in lines)

    async def _test_camera(self, watch: CameraWatch) -> str:
        assert self.scorer is not None
        head = f"test: camera {watch.name}: " if self.several else "test: "
        try:
            frame = await watch.camera.frame()
        except CameraError as exc:
            return f"{head}no snapshot: {exc}"
        jpeg = frame.jpeg
        context = self._context(watch)
        try:
            if context is None:
                answer = await self.scorer.predictor.predict(jpeg, TEST_PRINT_ID)
            else:
                answer = await self.scorer.predictor.predict(jpeg, TEST_PRINT_ID,
                                                             context=context)
        except PredictorError as exc:
            return (f"{head}snapshot OK ({len(jpeg) // 1024} KiB) but the predictor failed: "
                    f"{exc}")
        prediction = drop_masked(answer, watch.mask, frame.size)
        dropped = len(answer.detections) - len(prediction.detections)
        masked = (f", masked {format_mask(watch.mask)}" +
                  (f" ({dropped} detection(s) in it dropped)" if dropped else "")) \
            if watch.mask else ""
        saved = await self._save_snapshot(jpeg, prediction, "test", watch.name)
        link = f"; snapshot: {saved.link}" if saved else ""
        return (f"{head}p={prediction.p:.3f} with {len(prediction.detections)} detection(s) "
                f"from a {len(jpeg) // 1024} KiB snapshot{masked}{link}")

    async def _delayed_heaters(self, actions: list[str], resume_count: int) -> None:
        await asyncio.sleep(self.config.actions.heaters_off_delay)
        if self.session.print_state != "paused" or self.session.resume_count != resume_count:
            log.info("heaters left on: the print was resumed or ended within "
                     "heaters_off_delay")
            return
        heaters = self.status.get("heaters", {}).get("available_heaters")
        message = (f"print still paused after {self.config.actions.heaters_off_delay:g} s: "
                   f"{describe(actions)}.")
        await self.actions.run([*actions, "notify"], message, available_heaters=heaters)

    # -- persistence ---------------------------------------------------------

    async def save(self, force: bool = False) -> None:
        """Persist off the event loop; at most every few seconds unless forced."""
        now = time.monotonic()
        if not force and now - self._last_save < SAVE_EVERY:
            return
        self._last_save = now
        data = {"session": self.session.to_dict(), "settings": self.settings.to_dict(),
                "pause": self.paused_print.to_dict(), "saved_at": self.clock()}
        async with self._save_lock:
            try:
                await asyncio.to_thread(self.store.save, data)
            except (OSError, ValueError) as exc:  # ValueError: a NaN, never written
                log.error("state: cannot write %s: %s", self.store.path, exc)
