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


class Predictor(Protocol):
    name: str

    async def predict(self, jpeg: bytes, print_id: str) -> Prediction: ...

    async def close(self) -> None: ...
