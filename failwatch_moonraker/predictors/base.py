"""The predictor interface and its error taxonomy.

The daemon maps each error class to one behaviour (skip the frame, back
off, warn the user); none of them ever counts as evidence of a failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

# [confidence, (xc, yc, w, h)] in pixels of the image that was sent.
Detection = tuple[float, tuple[float, float, float, float]]


@dataclass(frozen=True)
class Prediction:
    p: float
    detections: tuple[Detection, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)


class PredictorError(Exception):
    """A frame the predictor could not score."""


class BadRequest(PredictorError):
    """The server refused this frame (HTTP 400): skip it, nothing else."""


class AuthError(PredictorError):
    """Credentials missing or refused: the user must fix the config."""


class RateLimited(PredictorError):
    """Too many requests: wait ``retry_after`` seconds if the server said so."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(PredictorError):
    """Network fault, timeout or server error: try again soon."""


class BadResponse(PredictorError):
    """The server answered something that is not the documented shape."""


@dataclass(frozen=True)
class PredictContext:
    """What the daemon knows about the printer and the print, for backends that want it.

    PrintWatch sends progress and times with every frame; the Obico ML server can
    be pointed at the camera's own snapshot URL. Built only for backends whose
    ``needs_context`` is true, so the others pay nothing per frame.
    """

    printer: str = ""  # the [printer NAME] in farm mode, else ""
    state: str = "printing"  # print_stats.state
    filename: str = ""
    progress: float | None = None  # 0..1, display_status.progress
    print_duration: float | None = None  # seconds actually printing
    total_duration: float | None = None  # seconds since the print started
    snapshot_url: str = ""  # the camera's own snapshot URL, resolved


class Predictor(Protocol):
    """A backend. Optional extras, looked up with ``getattr``:

    - ``needs_context`` (bool): pass a :class:`PredictContext` as ``context``;
    - ``async start()``: bind what the backend serves (called when the daemon starts;
      a backend must also work if it fails, retrying from ``predict``);
    - ``async health() -> str``: a cheap liveness probe for ``failwatch-moonraker check``;
    - ``async print_started()`` / ``async print_ended()``: the print's life cycle (local
      engines load with the first frame and unload a while after the print);
    - ``engine_facts() -> dict`` / ``engine_summary() -> str``: a local engine's package,
      version, runner, model, start-up time, last ms/frame, RSS (check, FAILWATCH_STATUS).
    """

    name: str

    async def predict(
        self, jpeg: bytes, print_id: str, context: PredictContext | None = None
    ) -> Prediction: ...

    async def close(self) -> None: ...
