"""Predictor back-ends; adding one is a module and one line in ``create_predictor``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from failwatch_moonraker.predictors.base import (
    AuthError,
    BadRequest,
    BadResponse,
    PredictContext,
    Prediction,
    Predictor,
    PredictorError,
    RateLimited,
    Unavailable,
)

if TYPE_CHECKING:
    import aiohttp

    from failwatch_moonraker.config import DetectionConfig, PredictorConfig

__all__ = [
    "AuthError",
    "BadRequest",
    "BadResponse",
    "PredictContext",
    "Prediction",
    "Predictor",
    "PredictorError",
    "RateLimited",
    "Unavailable",
    "create_predictor",
    "default_printer_id",
    "start_predictor",
]


def create_predictor(
    config: PredictorConfig,
    session: aiohttp.ClientSession,
    *,
    detection: DetectionConfig | None = None,
    printer_name: str = "",
) -> Predictor:
    """The backend ``config.backend``; ``detection`` feeds PrintWatch's buffer fields."""
    if config.backend == "obico":
        from failwatch_moonraker.predictors.remote.obico import ObicoPredictor

        return ObicoPredictor(
            session, config.url, config.serial_no, config.access_token, config.timeout
        )
    if config.backend == "obico_ml_api":
        from failwatch_moonraker.predictors.remote.ml_api import ObicoMLAPIPredictor

        return ObicoMLAPIPredictor(
            session, config.url, config.access_token, config.timeout,
            bending_factor=config.bending_factor, image_source=config.image_source,
            bind=config.image_bind, port=config.image_port, image_url=config.image_url,
        )
    if config.backend == "printwatch":
        from failwatch_moonraker.predictors.remote.printwatch import PrintWatchPredictor

        extra: dict[str, Any] = {}
        if detection is not None:
            extra = {"confidence": detection.buffer_confidence,
                     "buffer_length": detection.buffer_length,
                     "buffer_percent": detection.buffer_percent}
        return PrintWatchPredictor(
            session, config.url, config.api_key,
            config.printer_id or default_printer_id(printer_name), config.timeout, **extra,
        )
    if config.backend == "onnx":
        from failwatch_moonraker.predictors.local.onnx_backend import OnnxPredictor

        return OnnxPredictor.from_config(config)
    raise ValueError(f"unknown predictor backend {config.backend!r}")


def default_printer_id(printer_name: str = "") -> str:
    """``failwatch-<host>`` (``-<printer>`` in a farm): stable across restarts."""
    import socket

    host = socket.gethostname() or "klipper"
    return f"failwatch-{host}-{printer_name}" if printer_name else f"failwatch-{host}"


async def start_predictor(predictor: Predictor) -> None:
    """Run the backend's optional ``start()``; a failure is reported and retried later."""
    start = getattr(predictor, "start", None)
    if start is None:
        return
    try:
        await start()
    except PredictorError as exc:
        import logging

        logging.getLogger("failwatch").warning("predictor: %s; retrying with each frame", exc)
