"""A fake Obico partner predict API (``POST /ent/partners/api/elegoo/predict/``).

Follows the Elegoo-Obico contract: multipart form with ``serial_no``,
``access_token``, ``print_id`` (required, at most 256 characters) and ``img`` (a JPEG);
errors are ``{"error": "..."}`` with 400/401/429.  The failure score is scripted by
the test through ``score(frame, print_id)`` so a "spaghetti" can appear at a chosen
frame, and ``mode`` forces the error answers a client must cope with.

``hostile`` is a queue of raw answers (:class:`Hostile`: any bytes, any status,
any headers) served, one per request, before the scripted scores resume: NaN,
Infinity, ``-1e6``, 400-digit integers, JSON nested 100,000 deep, 5 MB bodies,
``Retry-After: 1e8``. They reach the client byte for byte, as a broken or
hostile server would send them.
"""

from __future__ import annotations

import asyncio
import io
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from PIL import Image

from sim._http import Arrivals, LocalHTTPServer

__all__ = ["FakeObicoPredictor", "Hostile", "PREDICT_PATH", "hostile_answers", "serve_hostile"]

PREDICT_PATH = "/ent/partners/api/elegoo/predict/"
MODES = ("ok", "400", "401", "401_echo", "429", "500", "malformed", "hang")
MAX_PRINT_ID = 256
EWM_SPAN = 12
SHORT_WINDOW = 310
LONG_WINDOW = 7200
IMAGE_W, IMAGE_H = 1280, 720
TOO_HOT = "You are running too hot! Take it easy buddy..."


@dataclass(frozen=True)
class Hostile:
    """One raw answer: exactly these bytes, this status and these headers."""

    body: bytes
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    name: str = ""


def _p(value: str) -> bytes:
    return b'{"result": {"p": ' + value.encode() + b', "detections": []}}'


def hostile_answers(backend: str = "obico") -> list[Hostile]:
    """The bad answers a server has been seen to give (issue 10, items 1-2), one each,
    in the shape of ``backend``'s answers (``obico``, ``obico_ml_api``, ``printwatch``)."""
    deep = 100_000
    nested = b"[" * deep + b"]" * deep
    pad = b"x" * (5 * 1024 * 1024)
    common = [
        Hostile(nested, name="JSON nested 100,000 deep"),
        Hostile(b'{"error": ' + nested + b"}", status=500,
                name="an error body nested 100,000 deep"),
    ]
    if backend == "obico_ml_api":
        def det(conf: str) -> bytes:
            return b'{"detections": [["failure", ' + conf.encode() + b", [10, 10, 5, 5]]]}"
        return [
            Hostile(det("NaN"), name="confidence NaN"),
            Hostile(det("Infinity"), name="confidence Infinity"),
            Hostile(det("-1e6"), name="confidence -1e6"),
            Hostile(det("1" * 400), name="confidence a 400-digit integer"),
            Hostile(b'{"detections": [["failure", 0.5, [1, NaN, 3, 4]]]}', name="a NaN box"),
            Hostile(b'{"detections": ' + nested + b"}", name="detections nested deep"),
            *common,
            Hostile(b'{"detections": [], "pad": "' + pad + b'"}', name="a 5 MiB answer"),
        ]
    if backend == "printwatch":
        def pw(score: str, code: str = "200") -> bytes:
            return (b'{"statusCode": ' + code.encode() + b', "score": ' + score.encode()
                    + b', "defect_detected": false, "boxes": []}')
        return [
            Hostile(pw("NaN"), name="score NaN"),
            Hostile(pw('"nan"'), name='score "nan"'),
            Hostile(pw("-1e6"), name="score -1e6"),
            Hostile(pw("1" * 400), name="score a 400-digit integer"),
            Hostile(pw("0.1", '"nan"'), name='statusCode "nan"'),
            Hostile(pw("0.1", "1e999"), name="statusCode 1e999"),
            Hostile(pw("0.1").replace(b'"boxes": []', b'"boxes": [[1, 2, Infinity, 4]]'),
                    name="an infinite box"),
            *common,
            Hostile(b'{"statusCode": 200, "score": 0.1, "pad": "' + pad + b'"}',
                    name="a 5 MiB answer"),
        ]
    return [
        Hostile(_p("NaN"), name="p NaN"),
        Hostile(_p("Infinity"), name="p Infinity"),
        Hostile(_p("-Infinity"), name="p -Infinity"),
        Hostile(_p("-1e6"), name="p -1e6"),
        Hostile(_p("1e300"), name="p 1e300"),
        Hostile(_p("1" * 400), name="p a 400-digit integer"),
        Hostile(b'{"result": {"p": 0.1, "detections": [[NaN, [1, 2, 3, 4]]]}}',
                name="a NaN confidence"),
        Hostile(b'{"result": {"p": 0.1, "detections": [[0.5, [1, Infinity, 3, 4]]]}}',
                name="an infinite box"),
        Hostile(b'{"result": {"p": 0.1, "x": ' + nested + b"}}",
                name="JSON nested 100,000 deep in the result"),
        *common,
        Hostile(b'{"result": {"p": 0.1, "pad": "' + pad + b'"}}', name="a 5 MiB answer"),
    ]


def serve_hostile(bad: Hostile) -> web.Response:
    """The raw answer, byte for byte."""
    return web.Response(status=bad.status, body=bad.body, headers=dict(bad.headers),
                        content_type="application/json")


def _json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


@dataclass
class _PrintStats:
    """Temporal state Obico keeps per print: EWM and the short rolling window."""

    frames: int = 0
    ewm: float | None = None
    short: deque[float] = field(default_factory=lambda: deque(maxlen=SHORT_WINDOW))


def split_detections(p: float, print_id: str, frame: int) -> list[list[Any]]:
    """Split ``p`` into 1-3 boxes (pixel coords of a 1280x720 image), deterministically.

    Each confidence is at most 1, so a ``p`` above 3 is capped at 3.
    """
    if p <= 0:
        return []
    count = 1 if p < 0.4 else 2 if p < 1.2 else 3
    rng = random.Random(f"{print_id}:{frame}")
    weights = [rng.uniform(0.5, 1.0) for _ in range(count)]
    total = sum(weights)
    confidences = [p * w / total for w in weights]
    if max(confidences) > 1.0:  # spread evenly, each capped at 1
        confidences = [min(1.0, p / count)] * count
    detections: list[list[Any]] = []
    for conf in sorted(confidences, reverse=True):
        w = rng.uniform(30.0, 300.0)
        h = rng.uniform(30.0, 300.0)
        xc = rng.uniform(w / 2, IMAGE_W - w / 2)
        yc = rng.uniform(h / 2, IMAGE_H - h / 2)
        detections.append([conf, [xc, yc, w, h]])
    return detections


def _is_jpeg(data: bytes) -> bool:
    if len(data) < 4 or not data.startswith(b"\xff\xd8\xff"):
        return False
    try:
        with Image.open(io.BytesIO(data)) as img:  # header only; cheap
            return img.format == "JPEG"
    except Exception:  # noqa: BLE001 - any decode problem means "invalid image"
        return False


class FakeObicoPredictor:
    """The predict endpoint on 127.0.0.1 with scripted scores and failure modes.

    ``score(frame, print_id) -> p`` where ``frame`` counts successful predictions of
    that print id from 0; or, when ``look`` is set, ``look(jpeg) -> p`` scores what
    the picture shows (as a real model does: a mask painted over it hides it).
    Modes: ``ok``, ``400``, ``401``, ``429`` (``retry_after``
    seconds, if set, becomes a Retry-After header), ``401_echo`` (401 quoting the
    credentials it got, as some servers do), ``500``, ``malformed`` (200 with
    a body that is not JSON), ``hang`` (never answers until the client gives up).
    """

    def __init__(
        self,
        serial_no: str = "SIM-PRINTER-0001",
        access_token: str = "sim-access-token",
        *,
        port: int | None = None,
        score: Callable[[int, str], float] | None = None,
    ) -> None:
        self.serial_no = serial_no
        self.access_token = access_token
        self.score: Callable[[int, str], float] = score or (lambda frame, print_id: 0.02)
        self.look: Callable[[bytes], float] | None = None
        self.mode = "ok"
        self.retry_after: float | None = None
        self.latency = 0.0  # seconds of "inference" before answering
        self.requests: list[dict[str, Any]] = []
        # Served first, one per request; None there is one ordinary scored answer.
        self.hostile: deque[Hostile | None] = deque()
        self._prints: dict[str, _PrintStats] = {}
        self._long: deque[float] = deque(maxlen=LONG_WINDOW)
        self._lifetime = 0
        self._released = asyncio.Event()
        self._arrivals = Arrivals("predictor")
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post(PREDICT_PATH, self._predict)
        self._http = LocalHTTPServer(app, port=port)

    @property
    def base_url(self) -> str:
        return self._http.base_url

    @property
    def url(self) -> str:
        """The full predict endpoint URL."""
        return f"{self.base_url}{PREDICT_PATH}"

    def frames(self, print_id: str) -> int:
        """Successful predictions made so far for ``print_id``."""
        stats = self._prints.get(print_id)
        return stats.frames if stats else 0

    @property
    def print_ids(self) -> list[str]:
        """Print ids seen in successful predictions, in first-seen order."""
        return list(self._prints)

    async def start(self) -> None:
        self._released = asyncio.Event()
        await self._http.start()

    async def stop(self) -> None:
        self._released.set()
        await self._http.stop()

    async def __aenter__(self) -> FakeObicoPredictor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_for_requests(self, count: int, timeout: float = 10.0) -> None:
        """Wait until at least ``count`` requests have arrived."""
        await self._arrivals.wait_for(self.requests, count, timeout)

    # ------------------------------------------------------------------ handler

    async def _predict(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        record: dict[str, Any] = {
            "time": time.time(),
            "content_type": request.content_type,
            "serial_no": form.get("serial_no"),
            "access_token": form.get("access_token"),
            "print_id": form.get("print_id"),
            "img_size": None,
            "img_filename": None,
            "img_content_type": None,
            "mode": self.mode,
            "status": None,
        }
        image = form.get("img")
        img_bytes: bytes | None = None
        if isinstance(image, web.FileField):
            img_bytes = image.file.read()
            record["img_filename"] = image.filename
            record["img_content_type"] = image.content_type
        elif isinstance(image, (bytes, bytearray)):
            img_bytes = bytes(image)
        elif isinstance(image, str):
            img_bytes = image.encode("utf-8", "surrogateescape")
        if img_bytes is not None:
            record["img_size"] = len(img_bytes)
        self.requests.append(record)
        self._arrivals.note()
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        response = await self._respond(record, img_bytes)
        record["status"] = response.status
        return response

    async def _respond(self, record: dict[str, Any], img: bytes | None) -> web.Response:
        bad = self.hostile.popleft() if self.hostile else None
        if bad is not None:
            record["hostile"] = bad.name
            return serve_hostile(bad)
        mode = self.mode
        if mode == "hang":
            await self._released.wait()
            return web.Response(status=503, text="predictor stopped")
        if mode == "400":
            return _json_error(400, "Missing or invalid image")
        if mode == "401":
            return _json_error(401, "Invalid credentials")
        if mode == "401_echo":  # servers that quote the request back
            return _json_error(401, f"Invalid credentials: serial_no={record['serial_no']} "
                               f"access_token={record['access_token']}")
        if mode == "429":
            headers = {}
            if self.retry_after is not None:
                headers["Retry-After"] = f"{self.retry_after:g}"
            return _json_error(429, TOO_HOT, headers)
        if mode == "500":
            return web.Response(
                status=500, text="<h1>Server Error (500)</h1>", content_type="text/html")
        if mode == "malformed":
            return web.Response(
                status=200, text='{"result": {"p": 0.1, "temporal', content_type="application/json")

        serial_no, token = record["serial_no"], record["access_token"]
        if not serial_no or not token:
            return _json_error(401, "serial_no and access_token are required")
        if serial_no != self.serial_no or token != self.access_token:
            return _json_error(401, "Invalid credentials")
        print_id = record["print_id"]
        if not isinstance(print_id, str) or not print_id:
            return _json_error(400, "print_id is required")
        if len(print_id) > MAX_PRINT_ID:
            return _json_error(400, f"print_id must be at most {MAX_PRINT_ID} characters")
        if img is None or not _is_jpeg(img):
            return _json_error(400, "Missing or invalid image")
        body = {"result": self._predict_result(print_id, img)}
        record["response"] = body  # tests compare what the daemon did with what it got
        return web.json_response(body)

    def _predict_result(self, print_id: str, img: bytes = b"") -> dict[str, Any]:
        stats = self._prints.setdefault(print_id, _PrintStats())
        frame = stats.frames
        wanted = float(self.look(img) if self.look is not None else self.score(frame, print_id))
        detections = split_detections(wanted, print_id, frame)
        p = sum(d[0] for d in detections)
        alpha = 2.0 / (EWM_SPAN + 1)
        stats.ewm = p if stats.ewm is None else alpha * p + (1 - alpha) * stats.ewm
        stats.short.append(p)
        stats.frames += 1
        self._long.append(p)
        self._lifetime += 1
        return {
            "p": p,
            "temporal_stats": {
                "ewm_mean": stats.ewm,
                "rolling_mean_short": sum(stats.short) / len(stats.short),
                "rolling_mean_long": sum(self._long) / len(self._long),
                "prediction_num": stats.frames,
                "prediction_num_lifetime": self._lifetime,
            },
            "detections": detections,
        }

    def reset(self) -> None:
        """Forget requests and temporal stats (a fresh server)."""
        self.requests.clear()
        self._prints.clear()
        self._long.clear()
        self._lifetime = 0
        self.mode = "ok"
