"""A fake PrintWatch v2 inference API (``ecosystem.md`` §7.1).

``POST /api/v2/infer`` with a JSON body: ``api_key``, ``printer_id``, ``ticket_id``,
``image_array`` (a base64 JPEG) and the print's data. A body without those
fields answers ``statusCode`` 215 (PrintWatch's "issue with payload data"), an
unknown api_key HTTP 401. A good frame answers ``statusCode`` 200 with
``score`` (scripted by ``score(frame, ticket_id)``), ``defect_detected`` (score at
or above the request's ``conf``), ``levels``, ``smas``, ``interval`` and
``boxes`` as ``[x1, y1, x2, y2]`` in 640 x 640 space (each image axis scaled on
its own): one box, :data:`BOX_640`, when the score is at least 0.1. ``mode``
forces HTTP errors and PrintWatch's own status codes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web
from PIL import Image

from sim._http import Arrivals, LocalHTTPServer
from sim.predictor import Hostile, serve_hostile

__all__ = ["BOX_640", "FakePrintWatch", "INFER_PATH"]

INFER_PATH = "/api/v2/infer"
BOX_640 = (64.0, 128.0, 320.0, 384.0)
REQUIRED = ("api_key", "printer_id", "ticket_id", "image_array")
MODES = ("ok", "213", "214", "215", "217", "218", "400", "401", "429", "500", "malformed",
         "hang", "string_fields")


class FakePrintWatch:
    def __init__(self, api_key: str = "sub_sim-key", *, port: int | None = None,
                 score: Callable[[int, str], float] | None = None) -> None:
        self.api_key = api_key
        self.score: Callable[[int, str], float] = score or (lambda frame, ticket: 0.02)
        self.mode = "ok"
        # Raw bad answers served first, one per request (None: one ordinary answer).
        self.hostile: deque[Hostile | None] = deque()
        self.interval: float | None = None  # sent with back-off codes when set
        self.requests: list[dict[str, Any]] = []
        self.frames: dict[str, int] = {}  # per ticket
        self._released = asyncio.Event()
        self._arrivals = Arrivals("PrintWatch")
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post(INFER_PATH, self._infer)
        self._http = LocalHTTPServer(app, port=port)

    @property
    def url(self) -> str:
        return f"{self._http.base_url}{INFER_PATH}"

    async def start(self) -> None:
        self._released = asyncio.Event()
        await self._http.start()

    async def stop(self) -> None:
        self._released.set()
        await self._http.stop()

    async def __aenter__(self) -> FakePrintWatch:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_for_requests(self, count: int, timeout: float = 10.0) -> None:
        await self._arrivals.wait_for(self.requests, count, timeout)

    async def _infer(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        record: dict[str, Any] = {"content_type": request.content_type,
                                  "user_agent": request.headers.get("User-Agent"),
                                  "mode": self.mode, "status": None, "body": None}
        if isinstance(body, dict):
            record["body"] = {k: v for k, v in body.items() if k != "image_array"}
            record["img_size"] = len(str(body.get("image_array", "")))
        self.requests.append(record)
        self._arrivals.note()
        response = await self._respond(body)
        record["status"] = response.status
        return response

    def _code(self, code: int, message: str) -> web.Response:
        answer: dict[str, Any] = {"statusCode": code, "message": message}
        if self.interval is not None:
            answer["interval"] = self.interval
        return web.json_response(answer)

    async def _respond(self, body: Any) -> web.Response:
        mode = self.mode
        if mode == "hang":
            await self._released.wait()
            return web.Response(status=503, text="stopped")
        if mode == "400":
            return web.json_response({"message": "Bad Request"}, status=400)
        if mode == "401":
            return web.json_response({"message": "Invalid API key"}, status=401)
        if mode == "429":
            return web.json_response({"message": "Slow down"}, status=429,
                                     headers={"Retry-After": "12"})
        if mode == "500":
            return web.Response(status=500, text="<h1>Server Error</h1>",
                                content_type="text/html")
        if mode in ("213", "214", "218"):
            return self._code(int(mode), "back off")
        if mode == "217":
            return self._code(217, "infer fail")
        if not isinstance(body, dict) or any(not body.get(k) for k in REQUIRED) or \
                mode == "215":
            return self._code(215, "Issue with payload data")
        if body["api_key"] != self.api_key:
            return web.json_response({"message": "Invalid API key"}, status=401)
        try:
            jpeg = base64.b64decode(body["image_array"], validate=True)
            with Image.open(io.BytesIO(jpeg)) as img:
                img.verify()
                kind = img.format
        except (binascii.Error, ValueError, OSError):
            kind = None
        if kind != "JPEG":
            return self._code(217, "infer fail: not an image")
        bad = self.hostile.popleft() if self.hostile else None
        if bad is not None:
            self.requests[-1]["hostile"] = bad.name
            return serve_hostile(bad)
        if mode == "malformed":
            return web.Response(text='{"statusCode": 200, "score": ', status=200,
                                content_type="application/json")
        ticket = str(body["ticket_id"])
        frame = self.frames.get(ticket, 0)
        self.frames[ticket] = frame + 1
        score = float(self.score(frame, ticket))
        conf = float(body.get("conf") or 0.6)
        boxes = [list(BOX_640)] if score >= 0.1 else []
        defect: Any = score >= conf
        if mode == "string_fields":  # the legacy spellings: "True"/"False", boxes as text
            defect = str(defect)
            boxes = str(boxes)  # type: ignore[assignment]
        return web.json_response({
            "statusCode": 200,
            "defect_detected": defect,
            "score": score,
            "smas": [score],
            "levels": [score >= 0.3, score >= 0.6],
            "boxes": boxes,
            "interval": 10,
        })
