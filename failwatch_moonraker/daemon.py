"""The watching daemon: Moonraker state in, frames through the predictor, actions out.

All decisions live in :mod:`failwatch_moonraker.session`; this module only
moves data between the edges and keeps the schedule. Rules it enforces:
frames are taken only while ``print_stats.state`` is ``printing`` and the
print's id is known; a camera, predictor or network fault skips the frame
and backs off, and is never evidence of a failure; nothing here blocks the
event loop (file writes and image work run in threads).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from failwatch_moonraker import __version__
from failwatch_moonraker.actions import (
    ActionRunner,
    describe,
    respond_script,
    split_delayed,
)
from failwatch_moonraker.camera import (
    Camera,
    CameraError,
    CameraSource,
    pick_webcam,
    resolve_url,
    source_from_webcam,
    web_base_from_moonraker,
)
from failwatch_moonraker.config import Config
from failwatch_moonraker.moonraker import (
    MoonrakerClient,
    MoonrakerError,
    console_via_unix_socket,
)
from failwatch_moonraker.policy import Level, PolicyParams
from failwatch_moonraker.predictors import (
    AuthError,
    BadRequest,
    Prediction,
    Predictor,
    PredictorError,
    RateLimited,
    create_predictor,
)
from failwatch_moonraker.session import ACTIVE_STATES, FrameOutcome, SessionParams, WatchSession
from failwatch_moonraker.stats import StatsParams
from failwatch_moonraker.store import StateStore

log = logging.getLogger("failwatch")

FAULT_BACKOFF_CAP = 30.0
AUTH_BACKOFF = 300.0
RATE_LIMIT_DEFAULT = 60.0
KLIPPY_POLL = 2.0
SAVE_EVERY = 5.0
TIMELAPSE_MACRO = "gcode_macro TIMELAPSE_TAKE_FRAME"


def session_params(config: Config) -> SessionParams:
    d = config.detection
    return SessionParams(
        stats=StatsParams(d.ewm_span, d.short_window, d.long_window),
        policy=PolicyParams(
            sensitivity=d.sensitivity,
            threshold_low=d.threshold_low,
            threshold_high=d.threshold_high,
            short_multiple=d.short_multiple,
            escalating_factor=d.escalating_factor,
            safe_frames=d.safe_frames,
        ),
        resume_cooldown=d.resume_cooldown,
        warning_cooldown=d.warning_cooldown,
    )


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


class FaultTracker:
    """One kind of fault (camera, predictor): backoff and not-too-chatty logs."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.count = 0
        self.last = ""

    def failed(self, message: str, interval: float, cap: float = FAULT_BACKOFF_CAP) -> float:
        self.count += 1
        wait = min(cap, max(interval, 2.0 ** (self.count - 1)))
        if self.count == 1 or message != self.last:
            log.warning("%s: %s; print not touched, next try in %g s", self.what, message, wait)
        elif self.count % 10 == 0:
            log.warning("%s: still failing (%d times in a row): %s", self.what, self.count,
                        message)
        else:
            log.debug("%s: %s", self.what, message)
        self.last = message
        return wait

    def ok(self) -> None:
        if self.count:
            log.info("%s: working again after %d failed attempt(s)", self.what, self.count)
        self.count = 0
        self.last = ""


class Daemon:
    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.store = StateStore(config.state.path)
        saved = self.store.load()
        raw_session = saved.get("session")
        self.session = WatchSession.from_dict(
            session_params(config), raw_session if isinstance(raw_session, dict) else {}
        )
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
        self.actions = ActionRunner(self.client, config.actions.failure_gcode)
        self.camera: Camera | None = None
        self.predictor: Predictor | None = None
        self.frames = 0
        self.lateness: list[float] = []
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._klippy_poller: asyncio.Task[None] | None = None
        self._resolver: asyncio.Task[None] | None = None
        self._last_save = 0.0
        self._save_lock = asyncio.Lock()
        self._camera_fault = FaultTracker("camera")
        self._predictor_fault = FaultTracker("predictor")
        self._predictor_auth_reported = False

    # -- life cycle ----------------------------------------------------------

    async def run(self) -> None:
        """Watch until :meth:`stop`; state is flushed on the way out."""
        timeout = aiohttp.ClientTimeout(total=None)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            self.camera = Camera(http, self.config.camera.timeout, self.config.camera.max_size)
            self.camera.source = self._configured_source()
            self.predictor = create_predictor(self.config.predictor, http)
            log.info("failwatch %s starting: Moonraker %s, predictor %s (%s), one frame "
                     "every %g s while printing", __version__, self.config.moonraker.url,
                     self.config.predictor.backend, self.config.predictor.url,
                     self.config.detection.interval)
            client_task = asyncio.create_task(self.client.run(), name="moonraker")
            watch_task = asyncio.create_task(self._watch_loop(), name="watch")
            try:
                await self._stop.wait()
            finally:
                # Stop watching and acting first, then drop Moonraker.
                await cancel_and_wait([watch_task, *self._tasks, self._klippy_poller,
                                       self._resolver])
                await cancel_and_wait([client_task])
                await self.client.close()
                await self.predictor.close()
                await self.save(force=True)
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
        if not self.config.camera.snapshot_url:
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
            "print_stats": ["state", "filename", "total_duration"],
            "webhooks": ["state", "state_message"],
            "heaters": ["available_heaters"],
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
        log.info("moonraker: Klippy ready; print state %s",
                 self.status.get("print_stats", {}).get("state", "?"))
        self._apply_status()

    def _on_notification(self, method: str, params: Any) -> None:
        if method == "notify_status_update":
            if isinstance(params, list) and params and isinstance(params[0], dict):
                merge_status(self.status, params[0])
                if "print_stats" in params[0] or TIMELAPSE_MACRO in params[0]:
                    self._apply_status()
        elif method == "notify_klippy_ready":
            self._spawn(self._subscribe_quietly(), "subscribe")
        elif method in ("notify_klippy_disconnected", "notify_klippy_shutdown"):
            log.warning("moonraker: Klippy %s; watching pauses until it is ready",
                        "disconnected" if method.endswith("disconnected") else "shut down")
            self._klippy_lost()
            self._start_klippy_poller()
        elif method == "notify_webcams_changed" and not self.config.camera.snapshot_url:
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
        if event == "resumed":
            log.info("print resumed by the user; no automatic pause for %g s",
                     self.config.detection.resume_cooldown)
        elif event == "ended":
            log.info("print %s; statistics of this print reset", state)
            self._spawn(self.save(force=True), "save")
        if state in ACTIVE_STATES and (not self.print_verified or
                                       (state == "printing" and previous != "printing")):
            self._resolve_print()
        elif state not in ACTIVE_STATES and self.session.print_id is not None:
            self.session.end_print()  # ended while failwatch was away
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
        if self.session.begin_print(job_id):
            log.info("watching print %s (job %s)", filename or "?", job_id)
        else:
            log.info("watching print %s (job %s) again; its statistics carry on (frame %d)",
                     filename or "?", job_id, self.session.stats.prediction_num)
        self.print_verified = True
        self._wake.set()
        await self.save(force=True)

    async def _discover_camera(self) -> None:
        try:
            result = await self.client.call("server.webcams.list")
        except MoonrakerError as exc:
            log.warning("camera: cannot read Moonraker's webcam list: %s", exc)
            return
        webcams = result.get("webcams", []) if isinstance(result, dict) else []
        cam = pick_webcam(webcams, self.config.camera.webcam)
        if cam is None:
            wanted = f"named '{self.config.camera.webcam}'" if self.config.camera.webcam else \
                "enabled with a snapshot URL"
            log.warning("camera: Moonraker has no webcam %s; set [camera] snapshot_url in "
                        "failwatch.cfg or add one in Mainsail/Fluidd", wanted)
            return
        c = self.config.camera
        source = source_from_webcam(cam, web_base_from_moonraker(self.config.moonraker.url),
                                    c.flip_horizontal, c.flip_vertical, c.rotation)
        if self.camera is not None and source != self.camera.source:
            self.camera.source = source
            log.info("camera: using webcam '%s' at %s", source.name, source.url)

    def _configured_source(self) -> CameraSource | None:
        c = self.config.camera
        if not c.snapshot_url:
            return None
        return CameraSource(
            url=resolve_url(c.snapshot_url, web_base_from_moonraker(self.config.moonraker.url)),
            flip_horizontal=bool(c.flip_horizontal),
            flip_vertical=bool(c.flip_vertical),
            rotation=c.rotation or 0,
        )

    # -- the frame loop ----------------------------------------------------

    def can_watch(self) -> bool:
        return self.klippy_ready and self.print_verified and self.session.watching

    async def _watch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.config.detection.interval
        next_at: float | None = None
        while True:
            if not self.can_watch():
                next_at = None
                self._wake.clear()
                await self._wake.wait()
                continue
            now = loop.time()
            if next_at is None:
                next_at = now
            if next_at > now:
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), next_at - now)
                continue
            self.lateness.append(now - next_at)
            if len(self.lateness) > 1000:
                del self.lateness[:500]
            backoff = await self.frame()
            now = loop.time()
            next_at += interval
            if backoff > interval:
                next_at = now + backoff
            elif next_at < now:
                next_at = now  # a slow frame: skip the missed slots, do not burst

    async def frame(self) -> float:
        """Take, score and judge one frame; returns the backoff to apply, or 0."""
        assert self.camera is not None and self.predictor is not None
        interval = self.config.detection.interval
        try:
            jpeg = await self.camera.snapshot()
        except CameraError as exc:
            return self._camera_fault.failed(str(exc), interval)
        self._camera_fault.ok()
        print_id = self.session.print_id
        if not self.can_watch() or print_id is None:
            return 0.0
        try:
            prediction = await self.predictor.predict(jpeg, print_id)
        except BadRequest as exc:
            log.warning("predictor: %s; frame skipped", exc)
            return 0.0
        except AuthError as exc:
            return await self._predictor_auth(exc)
        except RateLimited as exc:
            wait = exc.retry_after if exc.retry_after is not None else RATE_LIMIT_DEFAULT
            log.warning("predictor: %s; next frame in %g s", exc, wait)
            return max(wait, interval)
        except PredictorError as exc:
            return self._predictor_fault.failed(str(exc), interval)
        self._predictor_fault.ok()
        if self._predictor_auth_reported:
            log.info("predictor: credentials accepted again")
            self._predictor_auth_reported = False
        if not self.can_watch() or self.session.print_id != print_id:
            log.debug("frame dropped: the print is no longer running")
            return 0.0
        self.frames += 1
        outcome = self.session.on_frame(prediction.p, self.clock())
        if outcome is None:
            return 0.0
        self._log_frame(outcome, prediction)
        if outcome.fire is not None:
            await self._fire(outcome, prediction)
            await self.save(force=True)
        else:
            await self.save()
        return 0.0

    async def _predictor_auth(self, exc: AuthError) -> float:
        message = (f"{exc}. Check [predictor] serial_no and access_token in failwatch.cfg; "
                   f"failwatch retries in {AUTH_BACKOFF / 60:g} min and does not pause prints "
                   "meanwhile.")
        if not self._predictor_auth_reported:
            self._predictor_auth_reported = True
            log.error("predictor: %s", message)
            with contextlib.suppress(MoonrakerError):
                await self.actions.say(message, error=True)
        else:
            log.debug("predictor: still refused: %s", exc)
        return AUTH_BACKOFF

    def _log_frame(self, outcome: FrameOutcome, prediction: Prediction) -> None:
        stats = self.session.stats
        if outcome.changed:
            log.info("level %s: %s", outcome.level, stats.summary())
        else:
            log.debug("frame: level %s %s", outcome.level, stats.summary())
        if outcome.note and outcome.level is not Level.OK and outcome.fire is None:
            log.debug("no action: %s", outcome.note)

    async def _fire(self, outcome: FrameOutcome, prediction: Prediction) -> None:
        cfg = self.config.actions
        stats = self.session.stats
        heaters = self.status.get("heaters", {}).get("available_heaters")
        if outcome.fire is Level.FAILURE:
            now_actions, later = split_delayed(cfg.on_failure, cfg.heaters_off_delay)
            done = describe(now_actions, cfg.heaters_off_delay, later) or "no action configured"
            message = f"Print failure detected ({stats.summary()}): {done}."
            log.warning("%s", message)
            results = await self.actions.run(now_actions, message, error=True,
                                             available_heaters=heaters)
            if later:
                self._spawn(self._delayed_heaters(later, self.session.resume_count),
                            "heaters-off")
        else:
            now_actions = list(cfg.on_warning)
            would_pause = "pause" in cfg.on_failure and not self.session.failure_fired
            tail = "; failwatch pauses the print if it gets worse" if would_pause else ""
            message = f"Possible print failure ({stats.summary()}){tail}."
            log.warning("%s", message)
            results = await self.actions.run(now_actions, message, available_heaters=heaters)
        for result in results:
            if not result.ok and result.action != "notify":
                with contextlib.suppress(MoonrakerError):
                    await self.actions.say(f"could not {result.action}: {result.error}",
                                           error=True)

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
        data = {"session": self.session.to_dict(), "saved_at": self.clock()}
        async with self._save_lock:
            try:
                await asyncio.to_thread(self.store.save, data)
            except OSError as exc:
                log.error("state: cannot write %s: %s", self.store.path, exc)
