"""The frame pipeline of one printer: snapshot, mask, predictor, statistics, level.

A :class:`CameraWatch` per camera runs its frames through it and keeps its
own faults and backoff, so a dead camera is a fault of that camera only. The
:class:`Scorer` puts the printer's predictor behind the error taxonomy: a bad
answer skips the frame, a fault backs off, refused credentials are said once.
:class:`Pipeline` keeps the schedule. None of them decides anything: the
verdict is the pure core's (:class:`~failwatch_moonraker.core.session.WatchSession`),
and the actions are the daemon's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from failwatch_moonraker.camera.mask import Rect, drop_masked
from failwatch_moonraker.camera.snapshot import Camera, CameraError, CameraSource, Frame
from failwatch_moonraker.config import CameraConfig
from failwatch_moonraker.core.session import FrameOutcome, WatchSession
from failwatch_moonraker.core.stats import BadScore
from failwatch_moonraker.faults import FaultTracker
from failwatch_moonraker.predictors import (
    AuthError,
    BadRequest,
    PredictContext,
    Prediction,
    Predictor,
    PredictorError,
    RateLimited,
)

log = logging.getLogger("failwatch")

AUTH_BACKOFF = 300.0
RATE_LIMIT_DEFAULT = 60.0


@dataclass(frozen=True)
class Judged:
    """One camera's frame, scored and folded into its statistics."""

    watch: CameraWatch
    jpeg: bytes  # as the predictor saw it: oriented, the mask painted out
    prediction: Prediction  # detections centred in the mask dropped
    outcome: FrameOutcome
    at: float  # the time the statistics took it at


class CameraWatch:
    """One camera's frame pipeline: snapshot, mask, predictor, its own statistics.

    It keeps its own faults and backoff, so a dead camera is a fault of that
    camera only; the predictor (:class:`Scorer`) is the printer's, shared.
    """

    def __init__(self, config: CameraConfig, camera: Camera) -> None:
        self.config = config
        self.camera = camera
        self.name = config.name
        self.fault = FaultTracker(f"camera {self.name}" if self.name else "camera")
        self.retry_at = 0.0  # loop time before which this camera is not asked again

    @property
    def source(self) -> CameraSource | None:
        return self.camera.source

    @property
    def mask(self) -> tuple[Rect, ...]:
        return self.camera.mask

    def print_id(self, print_id: str) -> str:
        """The id the predictor files this camera's frames under (Obico keeps its own
        statistics per id, and a camera's baseline is its own)."""
        return f"{print_id}-{self.name}" if self.name else print_id

    async def take(self, now: float, interval: float) -> Frame | None:
        """A frame, or None after a fault (logged; the camera waits before the next try)."""
        try:
            frame = await self.camera.frame()
        except CameraError as exc:
            self.retry_at = now + self.fault.failed(str(exc), interval)
            return None
        self.fault.ok()
        self.retry_at = 0.0
        return frame

    async def score(self, frame: Frame, scorer: Scorer, print_id: str,
                    context: PredictContext | None) -> Prediction | None:
        """The predictor's answer for this camera's frame, the masked boxes dropped."""
        prediction = await scorer.score(frame.jpeg, self.print_id(print_id), context)
        if prediction is None:
            return None
        return drop_masked(prediction, self.mask, frame.size)

    def judge(self, session: WatchSession, prediction: Prediction,
              now: float) -> FrameOutcome | None:
        """Fold the score into this camera's statistics; None if it does not count."""
        try:
            return session.on_frame(prediction.p, now, self.name)
        except BadScore as exc:  # the answers gate should have caught it: never counted
            log.warning("predictor: %s; frame skipped and not counted, print not touched", exc)
            return None

    def new_print(self) -> None:
        self.fault.reset()
        self.retry_at = 0.0


def predict_context(printer: str, state: str, status: Mapping[str, Mapping[str, Any]],
                    source: CameraSource | None) -> PredictContext:
    """What backends that want the printer's context get with a frame."""
    stats = status.get("print_stats", {})
    progress = status.get("display_status", {}).get("progress")

    def seconds(value: Any) -> float | None:
        return float(value) if isinstance(value, (int, float)) and \
            not isinstance(value, bool) else None

    return PredictContext(
        printer=printer, state=state, filename=str(stats.get("filename") or ""),
        progress=seconds(progress), print_duration=seconds(stats.get("print_duration")),
        total_duration=seconds(stats.get("total_duration")),
        snapshot_url=source.url if source is not None else "")


class Scorer:
    """The printer's predictor, one answer at a time, behind the error taxonomy.

    ``say`` puts a line on the printer's console and never raises (refused
    credentials are worth telling the user once; other faults only go to the log).
    """

    def __init__(self, predictor: Predictor, backend: str, interval: float,
                 say: Callable[[str], Awaitable[None]]) -> None:
        self.predictor = predictor
        self.backend = backend
        self.interval = interval
        self._say = say
        self.fault = FaultTracker("predictor")
        self.backoff = 0.0  # after a None from score(): how long the printer waits
        self._auth_reported = False

    @property
    def needs_context(self) -> bool:
        return bool(getattr(self.predictor, "needs_context", False))

    async def ask(self, jpeg: bytes, print_id: str,
                  context: PredictContext | None = None) -> Prediction:
        """The predictor's answer as it is; its errors raise (FAILWATCH_TEST shows them)."""
        if context is None:
            return await self.predictor.predict(jpeg, print_id)
        return await self.predictor.predict(jpeg, print_id, context=context)

    async def score(self, jpeg: bytes, print_id: str,
                    context: PredictContext | None = None) -> Prediction | None:
        """The predictor's answer, or None with :attr:`backoff` set (0: just skip)."""
        self.backoff = 0.0
        try:
            prediction = await self.ask(jpeg, print_id, context)
        except BadRequest as exc:
            log.warning("predictor: %s; frame skipped", exc)
            return None
        except AuthError as exc:
            self.backoff = await self._refused(exc)
            return None
        except RateLimited as exc:
            wait = exc.retry_after if exc.retry_after is not None else RATE_LIMIT_DEFAULT
            log.warning("predictor: %s; next frame in %g s", exc, wait)
            self.backoff = max(wait, self.interval)
            return None
        except PredictorError as exc:
            self.backoff = self.fault.failed(str(exc), self.interval)
            return None
        self.fault.ok()
        if self._auth_reported:
            log.info("predictor: credentials accepted again")
            self._auth_reported = False
        return prediction

    async def _refused(self, exc: AuthError) -> float:
        credentials = {"printwatch": "api_key", "obico_ml_api": "access_token (the ML "
                       "server's ML_API_TOKEN)"}.get(self.backend, "serial_no and access_token")
        message = (f"{exc}. Check [predictor] {credentials} in failwatch.cfg; "
                   f"failwatch retries in {AUTH_BACKOFF / 60:g} min and does not pause prints "
                   "meanwhile.")
        if not self._auth_reported:
            self._auth_reported = True
            log.error("predictor: %s", message)
            await self._say(message)
        else:
            log.debug("predictor: still refused: %s", exc)
        return AUTH_BACKOFF

    def new_print(self) -> None:
        self.fault.reset()


class Pipeline:
    """The printer's frames: every ``interval``, each camera's frame through its pipeline.

    The daemon says when watching is allowed (``can_watch``), what backends that
    want it get with a frame (``context``) and what happens with a judged frame
    (``on_judged``: records, messages, actions). The loop never ends on an error:
    anything unexpected in a frame is logged with its traceback and the frame skipped.
    """

    def __init__(self, watches: list[CameraWatch], scorer: Scorer, session: WatchSession,
                 interval: float, *, can_watch: Callable[[], bool],
                 context: Callable[[CameraWatch], PredictContext | None],
                 on_judged: Callable[[Judged], Awaitable[None]],
                 clock: Callable[[], float], wake: asyncio.Event | None = None) -> None:
        self.watches = watches
        self.scorer = scorer
        self.session = session
        self.interval = interval
        self._can_watch = can_watch
        self._context = context
        self._on_judged = on_judged
        self._clock = clock
        self.wake = wake if wake is not None else asyncio.Event()  # set: look again now
        self.lateness: list[float] = []  # seconds each frame started behind schedule

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at: float | None = None
        while True:
            if not self._can_watch():
                next_at = None
                self.wake.clear()
                await self.wake.wait()
                continue
            now = loop.time()
            if next_at is None:
                next_at = now
            if next_at > now:
                self.wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), next_at - now)
                continue
            self.lateness.append(now - next_at)
            if len(self.lateness) > 1000:
                del self.lateness[:500]
            try:
                backoff = await self.frame()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not end the watch: skip the frame, go on
                log.exception("watch: unexpected error in a frame; frame skipped, print not "
                              "touched, watching goes on")
                backoff = self.interval
            now = loop.time()
            next_at += self.interval
            if backoff > self.interval:
                next_at = now + backoff
            elif next_at < now:
                next_at = now  # a slow frame: skip the missed slots, do not burst

    async def frame(self) -> float:
        """One frame per camera; returns the backoff to apply, or 0.

        The cameras' snapshots are taken together; the predictor answers one frame at
        a time. A camera that failed waits out its own backoff while the others go on.
        """
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = [w for w in self.watches if w.retry_at <= now]
        if due:
            if len(due) == 1:  # the usual printer: no task per frame
                frames = [await due[0].take(now, self.interval)]
            else:
                frames = list(await asyncio.gather(*(w.take(now, self.interval) for w in due)))
            for watch, frame in zip(due, frames, strict=True):
                print_id = self.session.print_id
                if frame is None:
                    continue
                if not self._can_watch() or print_id is None:
                    return 0.0
                prediction = await watch.score(frame, self.scorer, print_id,
                                               self._context(watch))
                if prediction is None:
                    if self.scorer.backoff:  # the predictor's trouble holds every camera
                        return self.scorer.backoff
                    continue
                if not self._can_watch() or self.session.print_id != print_id:
                    log.debug("frame dropped: the print is no longer running")
                    return 0.0
                at = self._clock()
                outcome = watch.judge(self.session, prediction, at)
                if outcome is not None:
                    await self._on_judged(Judged(watch, frame.jpeg, prediction, outcome, at))
        waits = [w.retry_at - loop.time() for w in self.watches]
        return max(0.0, min(waits))  # > 0 only while every camera is backing off

    def new_print(self) -> None:
        """A new print: faults count afresh, with quick first retries."""
        for watch in self.watches:
            watch.new_print()
        self.scorer.new_print()
