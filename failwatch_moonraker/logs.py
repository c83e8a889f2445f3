"""Logging: a rotated file in printer_data/logs (Mainsail lists it) plus stderr.

Every handler carries a filter that blanks the configured secrets, so an
API key or access token can never reach a log line, whoever formats it.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from collections.abc import Iterable

from failwatch_moonraker.secrets import REDACTED, scrub

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
__all__ = ["REDACTED", "RedactSecrets", "setup_logging"]


class RedactSecrets(logging.Filter):
    """Replace every secret in the formatted message and traceback."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        for secret in self.secrets:  # also the short ones secrets.scrub leaves alone
            if secret in text:
                text = text.replace(secret, REDACTED)
        return scrub(text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = self.scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        return True


def setup_logging(
    path: str,
    level: str = "INFO",
    secrets: Iterable[str] = (),
    max_size: int = 5 * 1024 * 1024,
    backups: int = 3,
    stream: bool = True,
) -> list[logging.Handler]:
    """Configure the root logger; returns the handlers it installed."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_failwatch", False):
            root.removeHandler(handler)
            handler.close()
    redact = RedactSecrets(secrets)
    formatter = logging.Formatter(FORMAT)
    handlers: list[logging.Handler] = []
    if path:
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        handlers.append(logging.handlers.RotatingFileHandler(
            path, maxBytes=max_size, backupCount=backups, encoding="utf-8"))
    if stream:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(redact)
        handler._failwatch = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # Third-party chatter stays at WARNING unless debugging failwatch itself.
    for noisy in ("websockets", "aiohttp", "asyncio", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handlers
