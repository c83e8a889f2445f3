"""Predictor back-ends; adding one is a module and one line in ``create_predictor``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from failwatch_moonraker.predictors.base import (
    AuthError,
    BadRequest,
    BadResponse,
    Prediction,
    Predictor,
    PredictorError,
    RateLimited,
    Unavailable,
)

if TYPE_CHECKING:
    import aiohttp

    from failwatch_moonraker.config import PredictorConfig

__all__ = [
    "AuthError",
    "BadRequest",
    "BadResponse",
    "Prediction",
    "Predictor",
    "PredictorError",
    "RateLimited",
    "Unavailable",
    "create_predictor",
]


def create_predictor(config: PredictorConfig, session: aiohttp.ClientSession) -> Predictor:
    if config.backend == "obico":
        from failwatch_moonraker.predictors.obico import ObicoPredictor

        return ObicoPredictor(
            session, config.url, config.serial_no, config.access_token, config.timeout
        )
    raise ValueError(f"unknown predictor backend {config.backend!r}")
