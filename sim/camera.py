"""A fake webcam (crowsnest / ustreamer / mjpg-streamer stand-in) for tests.

It serves one realistic JPEG - 1280x720, noisy enough to weigh ~125 KB like a real
snapshot - so the daemon's HTTP and upload paths are exercised with real sizes.
``mode`` flips the camera into the failure modes a snapshot client must survive.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io

import numpy as np
from aiohttp import web
from PIL import Image, ImageDraw

from sim._http import LocalHTTPServer

__all__ = ["FakeCamera", "make_snapshot_jpeg"]

MODES = ("ok", "error", "hang", "not_jpeg", "refused")
NOT_JPEG_BODY = (
    "<!DOCTYPE html><html><head><title>ustreamer</title></head>"
    "<body><h1>Camera offline</h1><p>No signal</p></body></html>"
)
STREAM_INTERVAL = 0.5  # seconds between MJPEG frames; enough for a UI, cheap for tests


@functools.lru_cache(maxsize=4)
def make_snapshot_jpeg(width: int = 1280, height: int = 720, seed: int = 1) -> bytes:
    """A printer-bed-like scene with sensor noise, JPEG quality 85 (~125 KB at 720p).

    Cached: tests start many cameras and the picture never changes.
    """
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    pixels = np.empty((height, width, 3), np.float32)
    pixels[..., 0] = 60 + 80 * y + 20 * x
    pixels[..., 1] = 70 + 60 * y
    pixels[..., 2] = 90 + 40 * (1 - x)
    pixels += rng.normal(0.0, 6.0, (height, width, 1)).astype(np.float32)  # sensor noise
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    w, h = width, height
    bed_top = int(h * 0.62)
    draw.rectangle((0, bed_top, w, h), fill=(40, 40, 48))
    draw.polygon(
        [(int(w * 0.1), h), (int(w * 0.25), bed_top), (int(w * 0.75), bed_top), (int(w * 0.9), h)],
        fill=(25, 25, 30), outline=(200, 200, 200),
    )
    for i in range(12):  # bed grid lines in perspective
        draw.line(
            [(int(w * 0.1) + i * int(w * 0.8 / 11), h),
             (int(w * 0.25) + i * int(w * 0.5 / 11), bed_top)],
            fill=(70, 70, 80), width=2,
        )
    part = (int(w * 0.42), int(h * 0.45), int(w * 0.58), int(h * 0.75))
    draw.rectangle(part, fill=(210, 120, 30), outline=(255, 170, 60), width=3)
    for k in range(10):  # layer lines on the printed part
        yy = part[1] + k * (part[3] - part[1]) // 10
        draw.line([(part[0], yy), (part[2], yy)], fill=(180, 100, 20), width=1)
    draw.ellipse((int(w * 0.05), int(h * 0.05), int(w * 0.12), int(h * 0.05) + int(w * 0.07)),
                 fill=(240, 240, 200))
    draw.text((20, h - 30), "failwatch sim camera", fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


class FakeCamera:
    """Snapshot server on 127.0.0.1 with switchable failure modes.

    Modes: ``ok``; ``error`` (HTTP 500); ``hang`` (accepts, never answers until the
    client gives up or the camera stops); ``not_jpeg`` (200 with an HTML page);
    ``refused`` (the port stops listening; connections are refused).
    """

    def __init__(
        self, *, port: int | None = None, width: int = 1280, height: int = 720, seed: int = 1
    ) -> None:
        self.width = width
        self.height = height
        self.seed = seed
        self.jpeg: bytes = b""
        self.requests = 0
        self.stream_clients = 0
        self._mode = "ok"
        self._released = asyncio.Event()
        self._relisten: asyncio.Task[None] | None = None
        app = web.Application()
        app.router.add_get("/snapshot", self._snapshot)
        app.router.add_get("/snapshot.jpg", self._snapshot)
        app.router.add_get("/stream", self._stream)
        app.router.add_get("/", self._by_action)
        app.router.add_get("/webcam", self._by_action)
        app.router.add_get("/webcam/", self._by_action)
        self._http = LocalHTTPServer(app, port=port)

    # ------------------------------------------------------------------ control

    @property
    def base_url(self) -> str:
        return self._http.base_url

    @property
    def url(self) -> str:
        """The snapshot URL (ustreamer style)."""
        return f"{self.base_url}/?action=snapshot"

    @property
    def stream_url(self) -> str:
        return f"{self.base_url}/?action=stream"

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        """Switch at once; leaving ``refused`` re-binds the port in the background."""
        if mode not in MODES:
            raise ValueError(f"unknown camera mode {mode!r}; expected one of {MODES}")
        previous, self._mode = self._mode, mode
        if mode == "refused":
            self._http.unlisten()
        elif previous == "refused":
            self._relisten = asyncio.get_running_loop().create_task(self._http.listen())

    async def set_mode(self, mode: str) -> None:
        """Like assigning ``mode`` but returns only once the listener matches it."""
        self.mode = mode
        if self._relisten is not None:
            task, self._relisten = self._relisten, None
            await task

    async def start(self) -> None:
        self.jpeg = make_snapshot_jpeg(self.width, self.height, self.seed)
        self._released = asyncio.Event()
        await self._http.start()

    async def stop(self) -> None:
        self._released.set()  # let hanging handlers return so shutdown is quick
        if self._relisten is not None:
            self._relisten.cancel()
            with contextlib.suppress(BaseException):
                await self._relisten
            self._relisten = None
        await self._http.stop()

    async def __aenter__(self) -> FakeCamera:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ handlers

    async def _by_action(self, request: web.Request) -> web.StreamResponse:
        action = request.query.get("action", "")
        if action == "snapshot":
            return await self._snapshot(request)
        if action == "stream":
            return await self._stream(request)
        return web.Response(status=404, text=f"unknown action {action!r}\n")

    async def _failure(self) -> web.Response | None:
        """The response the current failure mode calls for, or None when ``ok``."""
        if self._mode == "error":
            return web.Response(status=500, text="500: Internal Server Error\n")
        if self._mode == "hang":
            await self._released.wait()
            return web.Response(status=503, text="camera stopped\n")
        if self._mode == "not_jpeg":
            return web.Response(status=200, text=NOT_JPEG_BODY, content_type="text/html")
        return None

    async def _snapshot(self, request: web.Request) -> web.Response:
        self.requests += 1
        failure = await self._failure()
        if failure is not None:
            return failure
        return web.Response(
            body=self.jpeg, content_type="image/jpeg",
            headers={"Cache-Control": "no-store"},
        )

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        failure = await self._failure()
        if failure is not None:
            return failure
        response = web.StreamResponse(
            headers={"Content-Type": "multipart/x-mixed-replace;boundary=frame"}
        )
        await response.prepare(request)
        self.stream_clients += 1
        try:
            while not self._released.is_set() and self._mode == "ok":
                header = (
                    "--frame\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(self.jpeg)}\r\n\r\n"
                ).encode()
                await response.write(header + self.jpeg + b"\r\n")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._released.wait(), STREAM_INTERVAL)
        except ConnectionError:
            pass  # the viewer went away
        finally:
            self.stream_clients -= 1
        return response
