"""Obico's partner predict API (``shared/seeds/004_c3a21a5e048bc22c.txt``).

One multipart/form-data POST per frame with ``serial_no``, ``access_token``,
``print_id`` and ``img``; the answer's ``p`` is used as returned (Obico's p
is a sum of confidences and may exceed 1), its ``detections`` become boxes.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from typing import Any

import aiohttp

from failwatch_moonraker.predictors.answers import (
    MAX_DETECTIONS,
    check_detection,
    check_score,
    checked_prediction,
    load_json,
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

MAX_PRINT_ID = 256


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()[:100]
    try:
        return cap_wait(float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if when is None:
        return None
    return cap_wait(when.timestamp() - (time.time() if now is None else now))


def _error_text(body: bytes) -> str:
    """The server's own error message, short and printable."""
    data = try_json(body)
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        text = " ".join(data["error"][:1000].split())
        return text[:200] or "(empty body)"
    return text_of(body)


def parse_detections(raw: Any) -> tuple[Detection, ...]:
    """``[[conf, [xc, yc, w, h]], ...]``; the label-first triple is accepted too."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise BadResponse("bad answer: 'detections' is not a list")
    out: list[Detection] = []
    for item in raw[:MAX_DETECTIONS]:
        if isinstance(item, list) and len(item) == 3 and isinstance(item[0], str):
            item = item[1:]
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], list)):
            raise BadResponse(f"bad answer: malformed detection {short(item)}")
        out.append(check_detection(item[0], item[1]))
    return tuple(out)


def parse_response(body: bytes) -> Prediction:
    """A 200 answer; anything but a finite ``p`` in range with valid boxes is BadResponse."""
    data = load_json(body)
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(result, dict):
        raise BadResponse("bad answer: no 'result' object")
    if "p" not in result:
        raise BadResponse("bad answer: no numeric 'p'")
    p = check_score(result.get("p"), "'p'")
    return checked_prediction(p, parse_detections(result.get("detections")), raw=result)


class ObicoPredictor:
    name = "obico"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        serial_no: str,
        access_token: str,
        timeout: float = 30.0,
    ) -> None:
        self._session = session
        self.url = url
        self._serial_no = serial_no
        self._access_token = access_token
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    def __repr__(self) -> str:  # never show the token
        return f"ObicoPredictor(url={self.url!r}, serial_no={self._serial_no!r})"

    async def predict(
        self, jpeg: bytes, print_id: str, context: PredictContext | None = None
    ) -> Prediction:
        form = aiohttp.FormData()
        form.add_field("serial_no", self._serial_no)
        form.add_field("access_token", self._access_token)
        form.add_field("print_id", print_id[:MAX_PRINT_ID])
        form.add_field("img", jpeg, filename="snapshot.jpg", content_type="image/jpeg")
        try:
            async with self._session.post(self.url, data=form, timeout=self._timeout) as resp:
                body = await read_capped(resp.content)
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except asyncio.TimeoutError:
            raise Unavailable(
                f"no answer within {self._timeout.total:g} s from {self.url}"
            ) from None
        except aiohttp.ClientError as exc:
            raise Unavailable(f"cannot reach {self.url}: {exc.__class__.__name__}: {exc}") from None
        if status == 200:
            return await parse_off_loop(parse_response, body)
        message = _error_text(body)
        if status == 400:
            raise BadRequest(f"the predictor refused the frame (HTTP 400): {message}")
        if status in (401, 403):
            raise AuthError(f"the predictor refused the credentials (HTTP {status}): {message}")
        if status == 429:
            raise RateLimited(
                f"the predictor asks to slow down (HTTP 429): {message}",
                parse_retry_after(retry_after),
            )
        raise Unavailable(f"the predictor answered HTTP {status}: {message}")

    async def close(self) -> None:
        """The HTTP session belongs to the daemon."""
