"""The one gate every predictor answer passes before it reaches the statistics.

A garbage answer must never blind failwatch (a NaN poisons every mean for good),
never pause a healthy print (``p = -1e6`` drags the lifetime mean negative) and
never kill the watch loop (a 400-digit integer overflows ``float()``, JSON nested
100,000 deep overflows the stack). Every backend, remote or local, builds its
:class:`Prediction` with :func:`checked_prediction` (and decodes JSON with
:func:`load_json`), so such an answer is a :class:`BadResponse`: the frame is
skipped, not counted, and the daemon logs one line saying why.

Pure code (no I/O) so the local engines can use it as well as the HTTP ones.
"""

from __future__ import annotations

import asyncio
import json
import math
import reprlib
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from failwatch_moonraker.core.stats import MAX_SCORE
from failwatch_moonraker.predictors.base import (
    MAX_WAIT,
    BadResponse,
    Detection,
    Prediction,
    cap_wait,
)

MAX_DETECTIONS = 1000  # more boxes than this in one frame are cut
MAX_ANSWER_BYTES = 4 * 1024 * 1024  # a larger answer is refused unread
MAX_COORDINATE = 1e6  # pixels; a box beyond this is not a box in any camera picture
OFF_LOOP_BYTES = 64 * 1024  # answers above this are parsed in a worker thread

T = TypeVar("T")


def number(value: Any, *, text: bool = False) -> float | None:
    """``value`` as a finite float, or None (bools, NaN, infinities, huge integers).

    ``text`` also accepts a number written as a string (PrintWatch's legacy API).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and text:
        if len(value) > 64:
            return None
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, (int, float)):
        return None
    try:
        result = float(value)
    except OverflowError:  # an integer of hundreds of digits
        return None
    return result if math.isfinite(result) else None


def check_score(value: Any, what: str = "'score'") -> float:
    """A frame's score: a finite number in [0, MAX_SCORE], else BadResponse."""
    result = number(value)
    if result is None or not 0.0 <= result <= MAX_SCORE:
        raise BadResponse(
            f"bad answer: {what} is {short(value)}, not a number from 0 to {MAX_SCORE:g}")
    return result


def check_detection(conf: Any, box: Iterable[Any]) -> Detection:
    """One ``(confidence, (xc, yc, w, h))``; a non-finite or absurd value is BadResponse."""
    c = check_score(conf, "a detection's confidence")
    given = list(box)
    values = [number(v) for v in given]
    if len(values) != 4 or any(v is None or abs(v) > MAX_COORDINATE for v in values):
        raise BadResponse(f"bad answer: malformed detection, box {short(given)} is not 4 "
                          "finite pixel values")
    xc, yc, w, h = (float(v) for v in values)  # type: ignore[arg-type]
    if w < 0 or h < 0:
        raise BadResponse("bad answer: malformed detection, its box has a negative size")
    return (c, (xc, yc, w, h))


def checked_prediction(p: Any, detections: Iterable[Detection] = (),
                       raw: dict[str, Any] | None = None) -> Prediction:
    """The Prediction for ``p`` and its boxes, or BadResponse: the gate every backend uses.

    Detections beyond :data:`MAX_DETECTIONS` are cut; each kept one is validated.
    """
    score = check_score(p, "'p'")
    kept: list[Detection] = []
    for conf, box in detections:
        if len(kept) >= MAX_DETECTIONS:
            break
        kept.append(check_detection(conf, box))
    return Prediction(p=score, detections=tuple(kept), raw=raw if raw is not None else {})


def load_json(body: bytes, what: str = "") -> Any:
    """Decode an answer: too big, not UTF-8, not JSON or nested too deep is BadResponse."""
    of = f" {what}" if what else ""
    if len(body) > MAX_ANSWER_BYTES:
        raise BadResponse(f"bad answer:{of} {len(body) // 1024} KiB, larger than "
                          f"{MAX_ANSWER_BYTES // (1024 * 1024)} MiB")
    try:
        return json.loads(body)
    except RecursionError:
        raise BadResponse(f"bad answer:{of} JSON nested too deep") from None
    except ValueError:  # includes UnicodeDecodeError and JSONDecodeError
        raise BadResponse(f"bad answer:{of} not JSON: {text_of(body)[:80]!r}") from None


def try_json(body: bytes) -> Any:
    """``load_json`` for error bodies: None instead of an exception.

    Only small bodies are parsed (error messages are); this runs on the event loop.
    """
    if len(body) > OFF_LOOP_BYTES:
        return None
    try:
        return load_json(body)
    except BadResponse:
        return None


def text_of(body: bytes, limit: int = 200) -> str:
    """The start of a body as one printable line (never the whole of a huge one)."""
    text = " ".join(body[: limit * 4].decode("utf-8", "replace").split())
    return text[:limit] or "(empty body)"


_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxlist = 6
_REPR.maxdict = 4
_REPR.maxstring = 40
_REPR.maxlong = 40
_REPR.maxother = 40


def short(value: Any) -> str:
    """A value for a message, safe for anything JSON can hold (deep nesting, huge ints)."""
    try:
        return _REPR.repr(value)
    except (RecursionError, ValueError):
        return f"a {type(value).__name__}"


async def parse_off_loop(parse: Callable[..., T], body: bytes, *args: Any) -> T:
    """``parse(body, *args)``, in a worker thread when the body is large.

    A few KiB parse in microseconds; a multi-MiB answer would hold the event loop
    (and with it the printer's websocket) for as long as it takes.
    """
    if len(body) <= OFF_LOOP_BYTES:
        return parse(body, *args)
    if len(body) > MAX_ANSWER_BYTES:  # refused at once, unparsed
        load_json(body)
    return await asyncio.to_thread(parse, body, *args)


async def read_capped(content: Any, limit: int = MAX_ANSWER_BYTES) -> bytes:
    """Read an HTTP body (an aiohttp ``StreamReader``) up to ``limit`` bytes.

    Stops reading one byte past the cap, so a 100 MB answer costs 4 MiB of memory,
    and answers BadResponse.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await content.read(min(256 * 1024, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise BadResponse(f"bad answer: larger than {limit // (1024 * 1024)} MiB; "
                              "not read further")
    return b"".join(chunks)


__all__ = [
    "MAX_ANSWER_BYTES",
    "MAX_DETECTIONS",
    "MAX_SCORE",
    "MAX_WAIT",
    "cap_wait",
    "check_detection",
    "check_score",
    "checked_prediction",
    "load_json",
    "number",
    "parse_off_loop",
    "read_capped",
    "short",
    "text_of",
    "try_json",
]
