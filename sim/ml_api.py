"""A fake Obico ML server (``ml_api``) that follows its documented contract.

``GET /p/?img=<URL>``: downloads the image itself (0.1 s connect / 5 s read
timeouts, up to 3 tries on timeouts, connection errors and 5xx, like Obico's
server), checks it is a JPEG and answers ``{"detections": [[label, conf, [xc, yc,
w, h]], ...]}`` in pixels of the downloaded image. A download or decode failure
is ``400 {"detections": [], "message": ...}``, a missing ``img`` is 422, and with
a token configured a request without ``Authorization: Bearer <token>`` is 401.
``GET /hc/`` answers ``ok`` (or ``error`` when ``healthy`` is false).

The score is scripted by ``score(frame, image_url)``; ``mode`` forces the
error answers a client must cope with. Each request is recorded with what the
download got, and ``refetch`` makes the server fetch the image URL a second
time after the first download, to prove a one-time URL is really gone.
"""

from __future__ import annotations

import asyncio
import io
from collections import deque
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web
from PIL import Image

from sim._http import Arrivals, LocalHTTPServer
from sim.predictor import Hostile, serve_hostile, split_detections

__all__ = ["FakeMLAPI"]

MODES = ("ok", "400", "401", "422", "429", "500", "503", "malformed", "hang")


class FakeMLAPI:
    def __init__(self, token: str = "", *, port: int | None = None,
                 score: Callable[[int, str], float] | None = None) -> None:
        self.token = token
        self.score: Callable[[int, str], float] = score or (lambda frame, url: 0.02)
        self.mode = "ok"
        # Raw bad answers served first, one per request (None: one ordinary answer).
        self.hostile: deque[Hostile | None] = deque()
        self.healthy = True
        self.refetch = False
        self.latency = 0.0
        self.requests: list[dict[str, Any]] = []
        self.frames = 0
        self._client: aiohttp.ClientSession | None = None
        self._released = asyncio.Event()
        self._arrivals = Arrivals("ML server")
        app = web.Application()
        app.router.add_get("/p/", self._predict)
        app.router.add_get("/hc/", self._health)
        self._http = LocalHTTPServer(app, port=port)

    @property
    def url(self) -> str:
        return self._http.base_url

    async def start(self) -> None:
        self._released = asyncio.Event()
        self._client = aiohttp.ClientSession()
        await self._http.start()

    async def stop(self) -> None:
        self._released.set()
        await self._http.stop()
        if self._client is not None:
            await self._client.close()

    async def __aenter__(self) -> FakeMLAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_for_requests(self, count: int, timeout: float = 10.0) -> None:
        await self._arrivals.wait_for(self.requests, count, timeout)

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok" if self.healthy else "error")

    async def _download(self, url: str) -> tuple[int | None, bytes | None, str]:
        """Obico's download: 3 tries on timeouts, connection errors and 5xx."""
        assert self._client is not None
        timeout = aiohttp.ClientTimeout(sock_connect=0.1, sock_read=5.0)
        status: int | None = None
        problem = ""
        for attempt in range(3):
            try:
                async with self._client.get(url, timeout=timeout) as resp:
                    status = resp.status
                    if status < 500:
                        body = await resp.read()
                        return status, body if status == 200 else None, f"HTTP {status}"
                    problem = f"HTTP {status}"
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                problem = exc.__class__.__name__
            await asyncio.sleep(0.05 * (attempt + 1))
        return status, None, problem

    async def _predict(self, request: web.Request) -> web.Response:
        record: dict[str, Any] = {
            "img": request.query.get("img"),
            "authorization": request.headers.get("Authorization"),
            "mode": self.mode,
            "download_status": None,
            "img_size": None,
            "refetch_status": None,
            "status": None,
        }
        self.requests.append(record)
        self._arrivals.note()
        response = await self._respond(record)
        record["status"] = response.status
        return response

    async def _respond(self, record: dict[str, Any]) -> web.Response:
        mode = self.mode
        if mode == "hang":
            await self._released.wait()
            return web.Response(status=503, text="stopped")
        if self.token and record["authorization"] != f"Bearer {self.token}":
            return web.Response(status=401, text="Unauthorized")
        if mode == "401":
            return web.Response(status=401, text="Unauthorized")
        if mode in ("500", "503"):
            return web.Response(status=int(mode), text="<h1>Internal Server Error</h1>",
                                content_type="text/html")
        if mode == "429":
            return web.Response(status=429, text="Too Many Requests",
                                headers={"Retry-After": "7"})
        url = record["img"]
        if not url or mode == "422":
            return web.json_response({"detail": "img is required"}, status=422)
        status, body, problem = await self._download(url)
        record["download_status"] = status
        if self.refetch:
            record["refetch_status"] = (await self._download(url))[0]
        if body is None or mode == "400":
            return web.json_response(
                {"detections": [], "message": f"Failed to download image: {problem}"},
                status=400)
        record["img_size"] = len(body)
        try:
            with Image.open(io.BytesIO(body)) as img:
                img.verify()
                width, height = img.size
                kind = img.format
        except Exception:  # noqa: BLE001 - any decode failure is the client's bad image
            return web.json_response(
                {"detections": [], "message": "Failed to decode image"}, status=400)
        if kind != "JPEG":
            return web.json_response(
                {"detections": [], "message": "Failed to decode image"}, status=400)
        record["img_dims"] = (width, height)
        if self.latency:
            await asyncio.sleep(self.latency)
        bad = self.hostile.popleft() if self.hostile else None
        if bad is not None:
            record["hostile"] = bad.name
            return serve_hostile(bad)
        if mode == "malformed":
            return web.Response(text='{"detections": [["failure", 0.5', status=200,
                                content_type="application/json")
        frame, self.frames = self.frames, self.frames + 1
        wanted = float(self.score(frame, url))
        detections = [["failure", conf, box]
                      for conf, box in split_detections(wanted, "ml_api", frame)]
        record["detections"] = detections
        return web.json_response({"detections": detections})
