"""Scrub secrets from text that leaves the process toward a user.

One place knows what a secret looks like: the configured secret values
(``api_key``, ``access_token``, notification URLs: :meth:`Config.secrets`),
the password of any URL written ``scheme://user:password@host``, and the value
after a secret-looking key (``access_token=...``, ``"api_key": "..."``,
``Authorization: Bearer ...``) as an answer body may echo it. Everything a
user reads goes through :func:`scrub`: the console (``respond_script``), the
``check`` report and the log handlers. New messages need nothing more than
passing through one of those; text printed some other way calls :func:`scrub`.

The values are registered once at start-up (:func:`register`); a farm
registers every printer's, so any printer's secret is scrubbed everywhere.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

REDACTED = "***"
#: On the console: Klipper's G-code parser takes "*" for a checksum.
REDACTED_CONSOLE = "(hidden)"
#: Shorter values are not scrubbed on their own: "1" or "abc" would blank
#: ordinary words and numbers (the URL and key patterns still catch them).
MIN_LENGTH = 6

# scheme://user:password@  -> scheme://user:***@
_URL_USERINFO = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:'\"<>]*:)(?P<password>[^\s/@'\"<>]+)(?=@)")
# access_token=...  "api_key": "..."  'token': '...'  Authorization: Bearer ...
_KEYS = r"(?:access_token|api_key|apikey|api-key|x-api-key|token|password|passwd|secret)"
_KEYED = re.compile(
    r"(?P<head>\b" + _KEYS + r"=|[\"']" + _KEYS + r"[\"']\s*:\s*[\"']?"
    r"|\bauthorization[\"']?\s*[:=]\s*[\"']?(?:bearer|basic|token)\s+)"
    r"(?P<value>[^\s\"',;&}\]]+)",
    re.IGNORECASE)

_lock = threading.Lock()
_known: tuple[str, ...] = ()


def url_password(url: str) -> str:
    """The password of ``scheme://user:password@host/...``, or ''."""
    match = _URL_USERINFO.search(url)
    return match.group("password") if match else ""


def secret_values(config: Any) -> list[str]:
    """What :func:`register` needs from a :class:`~failwatch_moonraker.config.Config`:
    its secret options and the passwords of its URLs, every farm printer's too."""
    values = list(config.secrets())
    for one in (config, *getattr(config, "printers", ())):
        cameras = (one.camera, *getattr(one, "cameras", ()))
        urls = (*(c.snapshot_url for c in cameras), one.predictor.url, one.moonraker.url)
        values += [url_password(u) for u in urls if u]
    return [v for v in values if v]


def register(values: Iterable[str]) -> None:
    """Add secret values to scrub from now on (idempotent, thread-safe)."""
    global _known
    with _lock:
        merged = set(_known)
        merged.update(v.strip() for v in values if v and len(v.strip()) >= MIN_LENGTH)
        _known = tuple(sorted(merged, key=len, reverse=True))


def forget() -> None:
    """Drop every registered value (for tests)."""
    global _known
    with _lock:
        _known = ()


def scrub(text: str, extra: Iterable[str] = (), mask: str = REDACTED) -> str:
    """``text`` with every secret replaced by ``mask``."""
    if not text:
        return text
    known = _known
    if extra:
        known = tuple(sorted({*known, *(e for e in extra if e and len(e) >= MIN_LENGTH)},
                             key=len, reverse=True))
    text = _KEYED.sub(lambda m: m.group("head") + mask, text)
    if "://" in text:
        text = _URL_USERINFO.sub(lambda m: m.group("head") + mask, text)
    for secret in known:
        if secret in text:
            text = text.replace(secret, mask)
    return text
