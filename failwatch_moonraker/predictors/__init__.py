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
    "engine_summary",
    "predictor_hook",
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
    if config.backend == "pinozcam":  # a model on this host, in an engine process
        from failwatch_moonraker.predictors.local.pinozcam import PinozcamPredictor

        return PinozcamPredictor(config)
    if config.backend == "onnx":
        from failwatch_moonraker.predictors.local.onnx_backend import OnnxPredictor

        return OnnxPredictor.from_config(config)
    raise ValueError(f"unknown predictor backend {config.backend!r}")


def default_printer_id(printer_name: str = "") -> str:
    """``failwatch-<host>`` (``-<printer>`` in a farm): stable across restarts."""
    import socket

    host = socket.gethostname() or "klipper"
    return f"failwatch-{host}-{printer_name}" if printer_name else f"failwatch-{host}"


async def predictor_hook(predictor: Predictor | None, hook: str) -> None:
    """Call an optional life-cycle hook (``print_started``, ``print_ended``) if it exists.

    Local engines start with the first frame of a print and unload a while after
    it ends; remote backends have no such hooks. A hook's fault is logged only.
    """
    method = getattr(predictor, hook, None)
    if method is None:
        return
    try:
        await method()
    except Exception as exc:  # a hook must never take the daemon down
        import logging

        logging.getLogger("failwatch").warning("predictor: %s failed: %s", hook, exc)


def engine_summary(predictor: Predictor | None) -> str:
    """One line about a local engine (package, state, ms/frame, RSS), or ""."""
    summary = getattr(predictor, "engine_summary", None)
    return str(summary()) if summary is not None else ""


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
