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
from failwatch_moonraker.camera.annotate import SnapshotStore
from failwatch_moonraker.camera.snapshot import (
    Camera,
)
from failwatch_moonraker.cameras import camera_label, camera_source, cameras_of
from failwatch_moonraker.config import LOCAL_BACKENDS, Config
from failwatch_moonraker.core.policy import Level
from failwatch_moonraker.core.session import (
    ACTIVE_STATES,
    FrameOutcome,
    SessionParams,
    WatchSession,
    params_from_detection,
)
from failwatch_moonraker.notify import Notifier
from failwatch_moonraker.pipeline import CameraWatch, Judged, Pipeline, Scorer, predict_context
from failwatch_moonraker.predictors import (
    PredictContext,
    Prediction,
    Predictor,
    create_predictor,
    predictor_hook,
    start_predictor,
)
from failwatch_moonraker.printer.actions import (
    ActionRunner,
    respond_script,
)
from failwatch_moonraker.printer.commands import MacroCommands
from failwatch_moonraker.printer.control import (
    REMOTE_METHOD,
    STATE_MACRO,
    Settings,
)
from failwatch_moonraker.printer.moonraker import (
    MoonrakerClient,
    MoonrakerError,
    console_via_unix_socket,
)
from failwatch_moonraker.printer.paused import PausedPrint
from failwatch_moonraker.printer.response import FailureResponse
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
            self.params(), raw_session if isinstance(raw_session, dict) else {}, damaged,
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
        self.response = FailureResponse(self)
        self.actions = ActionRunner(self.client, config.actions.failure_gcode,
                                    on_pause_queued=self.response.pause_queued,
                                    wait_paused=self.response.wait_paused)
        self.paused_print = PausedPrint.from_dict(self.actions, saved.get("pause"))
        self.commands = MacroCommands(self)
        self.pipeline: Pipeline | None = None  # the cameras and the predictor, made in run()
        self.frames = 0
        self.wake = asyncio.Event()
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
            camera.source = camera_source(cfg, self.config.moonraker.url)
            watches.append(CameraWatch(cfg, camera))
        predictor = create_predictor(self.config.predictor, http,
                                     detection=self.config.detection,
                                     printer_name=self.config.name)
        interval = self.config.detection.interval
        scorer = Scorer(predictor, self.config.predictor.backend, interval, self._say_error)
        self.pipeline = Pipeline(watches, scorer, self.session, interval,
                                 can_watch=self.can_watch, context=self.context,
                                 on_judged=self._judged, clock=self.clock, wake=self.wake)

    def params(self) -> SessionParams:
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

    def spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
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
        self.wake.set()

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
            self.spawn(self._subscribe_quietly(), "subscribe")
        elif method in ("notify_klippy_disconnected", "notify_klippy_shutdown"):
            log.warning("moonraker: Klippy %s; watching pauses until it is ready",
                        "disconnected" if method.endswith("disconnected") else "shut down")
            self._klippy_lost()
            self._start_klippy_poller()
        elif method == REMOTE_METHOD:
            self.spawn(self.commands.handle(params), "command")
        elif method == "notify_webcams_changed" and self._discovered():
            self.spawn(self._discover_camera(), "webcams")

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
            self.response.paused_seen.set()
        if (previous in ("paused", "unknown") and state == "printing") or \
                state not in ACTIVE_STATES:
            # resumed or ended, from any button: undo the dialog and the idle timeout
            undo = self.paused_print.leave("resumed" if state == "printing" else state)
            if undo is not None:
                self.spawn(undo, "left-pause")
                self.spawn(self.save(force=True), "save")
        if event == "resumed":
            log.info("print resumed by the user; no automatic pause for %g s",
                     self.config.detection.resume_cooldown)
        elif event == "ended":
            log.info("print %s; statistics of this print reset", state)
            self.spawn(predictor_hook(self.predictor, "print_ended"), "print-ended")
            self.spawn(self.save(force=True), "save")
            self._post_status(force=True)
        if state in ACTIVE_STATES and (not self.print_verified or
                                       (state == "printing" and previous != "printing")):
            self._resolve_print()
        elif state not in ACTIVE_STATES and self.session.print_id is not None:
            self.session.end_print()  # ended while failwatch was away
            self.spawn(predictor_hook(self.predictor, "print_ended"), "print-ended")
            self.spawn(self.save(force=True), "save")
        self.wake.set()

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
        self.spawn(predictor_hook(self.predictor, "print_started"), "print-started")
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
        self.wake.set()
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
        for watch in self.watches:
            c = watch.config
            if c.snapshot_url:
                continue
            what, section = camera_label(c)
            source = camera_source(c, self.config.moonraker.url, webcams)
            if source is None:
                wanted = f"named '{c.webcam}'" if c.webcam else "enabled with a snapshot URL"
                log.warning("%s: Moonraker has no webcam %s; set %s snapshot_url in "
                            "failwatch.cfg or add one in Mainsail/Fluidd", what, wanted, section)
            elif source != watch.camera.source:
                watch.camera.source = source
                log.info("%s: using webcam '%s' at %s", what, source.name, source.url)

    # -- the frame loop ----------------------------------------------------

    def can_watch(self) -> bool:
        return (self.settings.enabled and self.klippy_ready and self.print_verified
                and self.session.watching)

    async def frame(self) -> float:
        """One frame per camera (benches drive it by hand); returns the backoff."""
        assert self.pipeline is not None
        return await self.pipeline.frame()

    def context(self, watch: CameraWatch) -> PredictContext | None:
        if self.scorer is None or not self.scorer.needs_context:
            return None
        return predict_context(self.config.name, self.session.print_state, self.status,
                               watch.source)

    async def _judged(self, judged: Judged) -> None:
        """A camera's frame counted: record it, say it, act on the printer's verdict."""
        outcome, prediction, jpeg = judged.outcome, judged.prediction, judged.jpeg
        self.frames += 1
        self.last_frame_at = judged.at
        if self.recorder is not None:  # queues only; the writing happens in a thread
            self.recorder.frame(self.last_frame_at, prediction, outcome, self.session,
                                self.scorer.predictor.name if self.scorer else "", jpeg,
                                self.status.get("print_stats", {}))
        self._log_frame(outcome, prediction)
        if outcome.changed:
            self.spawn(self._level_event(outcome), "level-event")
        if outcome.fire is not None:
            # In the background: a PAUSE queued behind Klipper's M109 must not stop the
            # frames (the session fires at most once per print, so nothing doubles).
            self.spawn(self.response.fire(outcome, prediction, jpeg), "actions")
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
        self.spawn(self._post_status_now(), "status")

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

    async def settings_changed(self) -> None:
        await self.save(force=True)
        self._post_status(force=True)

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
