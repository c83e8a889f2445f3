"""PrintWatch's inference API, v2 (``shared/reference/ecosystem.md`` §7.1).

One JSON POST per frame to ``.../api/v2/infer`` with the JPEG in base64
(``image_array``), the ``api_key``, a ``printer_id`` and a ``ticket_id`` that is
new for every print, plus the print's progress and times. The answer carries a
``statusCode`` of its own next to the HTTP status, the frame's ``score`` (used as
p), ``defect_detected`` and ``boxes`` as ``[x1, y1, x2, y2]`` in a 640 x 640 space
that spans the whole image (each axis scaled on its own, as PrintWatch's own
plugin draws them); they are converted to ``(xc, yc, w, h)`` in pixels of the
sent image. The server's ``levels`` and ``action`` are kept in ``raw`` but never
acted on: failwatch decides locally with its own policy.

``statusCode`` 213, 214 and 218 ask the client to back off (the answer's
``interval`` says for how long; 300 s otherwise, as PrintWatch's plugin does for
213), 215 means the payload was refused, 217 that inference failed on the
server.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from collections import deque
from typing import Any

import aiohttp

from failwatch_moonraker import __version__
from failwatch_moonraker.predictors.answers import (
    MAX_DETECTIONS,
    check_score,
    checked_prediction,
    load_json,
    number,
    parse_off_loop,
    read_capped,
    short,
    text_of,
    try_json,
)
from failwatch_moonraker.predictors.base import (
    AuthError,
    BadRequest,
    BadResponse,
    Detection,
    PredictContext,
    Prediction,
    RateLimited,
    Unavailable,
    cap_wait,
)
from failwatch_moonraker.predictors.imagesize import jpeg_size
from failwatch_moonraker.predictors.remote.obico import parse_retry_after

PRINTWATCH_DEFAULT_URL = "https://octoprint.printpal.io/api/v2/infer"
BOX_SPACE = 640.0
BACK_OFF_CODES = frozenset({213, 214, 218})
BACK_OFF_DEFAULT = 300.0
THRESHOLDS = (0.30, 0.60)  # PrintWatch's notify/action defaults; its levels are not used
STATES = {"printing": 0, "paused": 1}  # anything else: 2 (online)
_TICKETS = uuid.UUID("5d0c1bb6-2f55-4f4e-9d3b-1f0a8f6c2b7e")


def ticket_for(printer_id: str, print_id: str) -> str:
    """A uuid per print, the same after a restart in the middle of that print."""
    return str(uuid.uuid5(_TICKETS, f"{printer_id}\n{print_id}"))


def _number(value: Any) -> float | None:
    return number(value, text=True)


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"  # the legacy API sends "True"/"False"
    return None


def _message(data: Any, body: bytes) -> str:
    if isinstance(data, dict):
        for key in ("message", "error", "detail", "statusMessage"):
            if isinstance(data.get(key), str):
                return " ".join(data[key][:1000].split())[:200] or "(empty message)"
    return text_of(body)


def convert_boxes(raw: Any, score: float, size: tuple[int, int] | None) -> tuple[Detection, ...]:
    """PrintWatch's xyxy boxes in 640-px space to (xc, yc, w, h) in image pixels.

    A fifth number in a box is its confidence; otherwise the frame's score is used.
    """
    if isinstance(raw, str):  # the legacy API sends the list as text
        try:
            raw = load_json(raw.encode("utf-8", "replace"), "'boxes'")
        except BadResponse:
            raise BadResponse(f"bad answer: 'boxes' is not a list: {raw[:80]!r}") from None
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise BadResponse("bad answer: 'boxes' is not a list")
    sx, sy = (size[0] / BOX_SPACE, size[1] / BOX_SPACE) if size else (1.0, 1.0)
    out: list[Detection] = []
    for box in raw[:MAX_DETECTIONS]:
        values = [_number(v) for v in box[:5]] if isinstance(box, list) else []
        if len(values) < 4 or any(v is None for v in values[:4]):
            raise BadResponse(f"bad answer: malformed box {short(box)}")
        x1, y1, x2, y2 = (float(v) for v in values[:4])  # type: ignore[arg-type]
        conf = values[4] if len(values) > 4 and values[4] is not None else score
        x1, x2 = sorted((x1, x2))
        y1, y2 = sorted((y1, y2))
        out.append((float(conf), ((x1 + x2) / 2 * sx, (y1 + y2) / 2 * sy,
                                  (x2 - x1) * sx, (y2 - y1) * sy)))
    return tuple(out)


def parse_answer(body: bytes, size: tuple[int, int] | None) -> Prediction:
    """A 200 answer: its ``statusCode`` mapped to the taxonomy, or the prediction."""
    data = load_json(body)
    if not isinstance(data, dict):
        raise BadResponse("bad answer: not a JSON object")
    code_value = _number(data.get("statusCode"))
    if code_value is None or not 0 <= code_value < 1000:
        raise BadResponse(f"bad answer: 'statusCode' {short(data.get('statusCode'))} is not "
                          "an HTTP-like status number")
    code = int(code_value)
    if code in BACK_OFF_CODES:
        raw = data.get("interval")
        if isinstance(raw, str):
            with contextlib.suppress(ValueError):
                raw = float(raw[:64])
        asked = cap_wait(raw) if isinstance(raw, (int, float)) and \
            not isinstance(raw, bool) else None
        wait = asked if asked else BACK_OFF_DEFAULT  # capped at MAX_WAIT by cap_wait
        raise RateLimited(f"PrintWatch asks to back off (statusCode {code}): "
                          f"{_message(data, b'')}", wait)
    if code == 215:
        raise BadRequest(f"PrintWatch refused the request data (statusCode 215): "
                         f"{_message(data, b'')}")
    if code == 217:
        raise Unavailable(f"PrintWatch could not run inference (statusCode 217): "
                          f"{_message(data, b'')}")
    if code in (401, 403):
        raise AuthError(f"PrintWatch refused the api_key (statusCode {code}): "
                        f"{_message(data, b'')}")
    if code != 200:
        raise BadResponse(f"bad answer: unknown PrintWatch statusCode {code}: "
                          f"{_message(data, b'')}")
    raw_score = data.get("score")
    if raw_score is None:
        raise BadResponse("bad answer: no numeric 'score'")
    if isinstance(raw_score, str):  # the legacy API sends numbers as text
        with contextlib.suppress(ValueError):
            raw_score = float(raw_score[:64])
    score = check_score(raw_score, "'score'")
    if "defect_detected" in data and _flag(data["defect_detected"]) is None:
        raise BadResponse("bad answer: 'defect_detected' is not a boolean")
    return checked_prediction(score, convert_boxes(data.get("boxes"), score, size), raw=data)


class PrintWatchPredictor:
    name = "printwatch"
    needs_context = True

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        api_key: str,
        printer_id: str,
        timeout: float = 30.0,
        *,
        confidence: float = 0.6,
        buffer_length: int = 16,
        buffer_percent: float = 60.0,
    ) -> None:
        self._session = session
        self.url = url
        self._api_key = api_key
        self.printer_id = printer_id
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._confidence = confidence
        self._buffer_length = buffer_length
        self._buffer_percent = buffer_percent
        self._ticket = ""
        self._scores: deque[float] = deque(maxlen=4 * buffer_length)

    def __repr__(self) -> str:  # never show the key
        return f"PrintWatchPredictor(url={self.url!r}, printer_id={self.printer_id!r})"

    def payload(self, jpeg: bytes, print_id: str,
                context: PredictContext | None) -> dict[str, Any]:
        """The infer request's JSON body."""
        ticket = ticket_for(self.printer_id, print_id)
        if ticket != self._ticket:
            self._ticket = ticket
            self._scores.clear()
        ctx = context or PredictContext()
        progress = min(1.0, max(0.0, number(ctx.progress) or 0.0))
        printed = number(ctx.print_duration)
        if printed is None:
            printed = number(ctx.total_duration) or 0.0
        printed = min(max(printed, 0.0), 1e9)  # a broken status never breaks the request
        left = printed / progress - printed if progress > 0.001 else 0.0
        return {
            "api_key": self._api_key,
            "printer_id": self.printer_id,
            "ticket_id": ticket,
            "version": f"failwatch-moonraker {__version__}",
            "state": STATES.get(ctx.state, 2),
            "conf": self._confidence,
            "buffer_length": self._buffer_length,
            "buffer_percent": self._buffer_percent,
            "thresholds": list(THRESHOLDS),
            "scores": list(self._scores),
            "enable_feedback_images": False,
            "image_array": base64.b64encode(jpeg).decode("ascii"),
            "printTime": round(printed),
            "printTimeLeft": round(left),
            "progress": round(progress * 100, 1),
            "job_name": ctx.filename,
            "force": False,
        }

    async def predict(
        self, jpeg: bytes, print_id: str, context: PredictContext | None = None
    ) -> Prediction:
        body_json = self.payload(jpeg, print_id, context)
        headers = {"User-Agent": f"Mozilla/5.0 (compatible; failwatch-moonraker/{__version__})"}
        try:
            async with self._session.post(self.url, data=json.dumps(body_json),
                                          headers={**headers,
                                                   "Content-Type": "application/json"},
                                          timeout=self._timeout) as resp:
                body = await read_capped(resp.content)
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except asyncio.TimeoutError:
            raise Unavailable(
                f"no answer within {self._timeout.total:g} s from {self.url}") from None
        except aiohttp.ClientError as exc:
            raise Unavailable(f"cannot reach {self.url}: {exc.__class__.__name__}: {exc}") \
                from None
        if status == 200:
            prediction = await parse_off_loop(parse_answer, body, jpeg_size(jpeg))
            self._scores.append(prediction.p)
            return prediction
        message = _message(try_json(body), body)
        if status == 400:
            raise BadRequest(f"PrintWatch refused the frame (HTTP 400): {message}")
        if status in (401, 403):
            raise AuthError(f"PrintWatch refused the api_key (HTTP {status}): {message}")
        if status == 429:
            raise RateLimited(f"PrintWatch asks to slow down (HTTP 429): {message}",
                              parse_retry_after(retry_after))
        raise Unavailable(f"PrintWatch answered HTTP {status}: {message}")

    async def close(self) -> None:
        """The HTTP session belongs to the daemon."""
