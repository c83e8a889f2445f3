"""The frame pipeline of one printer: each camera's snapshot, the predictor, the verdict.

A :class:`CameraWatch` per camera takes its frames and keeps its own faults
and backoff, so a dead camera is a fault of that camera only. The
:class:`Scorer` puts the printer's predictor behind the error taxonomy: a bad
answer skips the frame, a fault backs off, refused credentials are said once.
Neither decides anything: the verdict is the pure core's
(:class:`~failwatch_moonraker.core.session.WatchSession`), and the actions are
the daemon's.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from failwatch_moonraker.camera.snapshot import Camera, CameraError, CameraSource
from failwatch_moonraker.config import CameraConfig
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


class CameraWatch:
    """One camera of the printer: where its frames come from, its faults, its backoff."""

    def __init__(self, config: CameraConfig, camera: Camera) -> None:
        self.config = config
        self.camera = camera
        self.name = config.name
        self.fault = FaultTracker(f"camera {self.name}" if self.name else "camera")
        self.retry_at = 0.0  # loop time before which this camera is not asked again

    @property
    def source(self) -> CameraSource | None:
        return self.camera.source

    def label(self, several: bool) -> str:
        """How messages name it: nothing for a printer's only camera."""
        return f"camera {self.name}" if several and self.name else ""

    def print_id(self, print_id: str) -> str:
        """The id the predictor files this camera's frames under (Obico keeps its own
        statistics per id, and a camera's baseline is its own)."""
        return f"{print_id}-{self.name}" if self.name else print_id

    async def take(self, now: float, interval: float) -> bytes | None:
        """A frame, or None after a fault (logged; the camera waits before the next try)."""
        try:
            jpeg = await self.camera.snapshot()
        except CameraError as exc:
            self.retry_at = now + self.fault.failed(str(exc), interval)
            return None
        self.fault.ok()
        self.retry_at = 0.0
        return jpeg

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

    async def score(self, jpeg: bytes, print_id: str,
                    context: PredictContext | None = None) -> Prediction | None:
        """The predictor's answer, or None with :attr:`backoff` set (0: just skip)."""
        self.backoff = 0.0
        try:
            if context is None:
                prediction = await self.predictor.predict(jpeg, print_id)
            else:
                prediction = await self.predictor.predict(jpeg, print_id, context=context)
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
