"""Obico's self-hosted ML server (``ml_api``, ``shared/reference/obico.md`` §2).

``GET {url}/p/?img=<image URL>`` with ``Authorization: Bearer <token>`` when the
server has ``ML_API_TOKEN`` set. The server downloads the image itself, so the
frame is offered on a one-time URL of :mod:`failwatch_moonraker.predictors.remote.frameserver`
(or, with ``image_source: camera``, the camera's own snapshot URL is passed and
the server takes its own picture). It answers ``{"detections": [[label, conf,
[xc, yc, w, h]], ...]}`` in pixels of the image it downloaded; as in Obico's
server, every confidence is multiplied by the bending factor and ``p`` is their
sum (so p can exceed 1). ``GET {url}/hc/`` answers ``ok`` when the model loaded.
"""

from __future__ import annotations

import asyncio

import aiohttp

from failwatch_moonraker.predictors.answers import (
    MAX_DETECTIONS,
    check_detection,
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
)
from failwatch_moonraker.predictors.remote import frameserver
from failwatch_moonraker.predictors.remote.obico import parse_retry_after

IMAGE_SOURCES = ("serve", "camera")


def base_url(url: str) -> str:
    """The server's root: a pasted ``.../p/`` or ``.../hc/`` is tolerated."""
    url = url.rstrip("/")
    for tail in ("/p", "/hc"):
        if url.endswith(tail):
            url = url[: -len(tail)]
    return url


def _message(body: bytes) -> str:
    data = try_json(body)
    if isinstance(data, dict):
        for key in ("message", "error", "detail"):
            if isinstance(data.get(key), str):
                return " ".join(data[key][:1000].split())[:200] or "(empty message)"
    return text_of(body)


def parse_detections(body: bytes, bending_factor: float = 1.0) -> Prediction:
    """The ``/p/`` answer as a prediction: ``p`` = sum of the (bent) confidences."""
    data = load_json(body)
    raw = data.get("detections") if isinstance(data, dict) else None
    if not isinstance(raw, list):
        raise BadResponse("bad answer: no 'detections' list")
    out: list[Detection] = []
    for item in raw[:MAX_DETECTIONS]:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[2], list)
                and len(item[2]) == 4):
            raise BadResponse(f"bad answer: malformed detection {short(item)}")
        conf, box = check_detection(item[1], item[2])
        out.append((conf * bending_factor, box))
    return checked_prediction(sum(c for c, _ in out), out, raw=data)


class ObicoMLAPIPredictor:
    name = "obico_ml_api"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        token: str = "",
        timeout: float = 30.0,
        *,
        bending_factor: float = 1.0,
        image_source: str = "serve",
        bind: str = "0.0.0.0",
        port: int = 0,
        image_url: str = "",
    ) -> None:
        self._session = session
        self.url = base_url(url)
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self.bending_factor = bending_factor
        self.image_source = image_source
        self.needs_context = image_source == "camera"
        self._bind = bind
        self._port = port
        self._image_url = image_url.rstrip("/")
        self.server: frameserver.FrameServer | None = None
        self.image_base = ""  # where the ML server fetches our frames
        self._starting: asyncio.Lock | None = None

    def __repr__(self) -> str:  # never show the token
        return f"ObicoMLAPIPredictor(url={self.url!r}, image_source={self.image_source!r})"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    async def start(self) -> None:
        """Listen for the ML server's downloads; raises Unavailable if the port is taken."""
        if self.image_source != "serve" or self.server is not None:
            return
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self.server is not None:
                return
            try:
                server = await frameserver.acquire(self._bind, self._port)
            except OSError as exc:
                raise Unavailable(
                    f"cannot serve frames on {self._bind}:{self._port} for the ML server "
                    f"({exc.strerror or exc}); set [predictor] image_port to a free port"
                ) from None
            self.image_base = self._image_url or await frameserver.public_base(
                self._bind, server.port, self.url)
            self.server = server

    async def predict(
        self, jpeg: bytes, print_id: str, context: PredictContext | None = None
    ) -> Prediction:
        if self.image_source == "camera":
            url = context.snapshot_url if context is not None else ""
            if not url:
                raise BadRequest("no camera snapshot URL known yet to give the ML server")
            return await self._ask(url)
        await self.start()
        assert self.server is not None
        async with self.server.offer(jpeg) as path:
            return await self._ask(self.image_base + path)

    async def _ask(self, image_url: str) -> Prediction:
        endpoint = f"{self.url}/p/"
        try:
            async with self._session.get(endpoint, params={"img": image_url},
                                         headers=self._headers(),
                                         timeout=self._timeout) as resp:
                body = await read_capped(resp.content)
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except asyncio.TimeoutError:
            raise Unavailable(
                f"no answer within {self._timeout.total:g} s from {endpoint}") from None
        except aiohttp.ClientError as exc:
            raise Unavailable(
                f"cannot reach {endpoint}: {exc.__class__.__name__}: {exc}") from None
        if status == 200:
            return await parse_off_loop(parse_detections, body, self.bending_factor)
        message = _message(body)
        if status == 400:
            where = ""
            if self.image_source == "serve":
                where = (f" (it was to download the frame from {self.image_base}; if it cannot "
                         "reach that, set [predictor] image_url)")
            raise BadRequest(f"the ML server could not use the frame (HTTP 400): {message}"
                             f"{where}")
        if status in (401, 403):
            raise AuthError(f"the ML server refused the token (HTTP {status}): {message}")
        if status == 422:
            raise BadRequest(f"the ML server found no image URL in the request (HTTP 422): "
                             f"{message}")
        if status == 429:
            raise RateLimited(f"the ML server asks to slow down (HTTP 429): {message}",
                              parse_retry_after(retry_after))
        raise Unavailable(f"the ML server answered HTTP {status}: {message}")

    async def health(self) -> str:
        """``GET /hc/``: the server's own word (``ok`` once its model is loaded)."""
        endpoint = f"{self.url}/hc/"
        try:
            async with self._session.get(endpoint, timeout=self._timeout) as resp:
                body = await read_capped(resp.content, 64 * 1024)
                text = body.decode("utf-8", "replace").strip()
                status = resp.status
        except asyncio.TimeoutError:
            raise Unavailable(
                f"no answer within {self._timeout.total:g} s from {endpoint}") from None
        except aiohttp.ClientError as exc:
            raise Unavailable(
                f"cannot reach {endpoint}: {exc.__class__.__name__}: {exc}") from None
        if status != 200 or text != "ok":
            raise Unavailable(f"{endpoint} answered HTTP {status} {text[:80]!r} (expected 'ok'; "
                              "is the model loaded?)")
        return text

    async def close(self) -> None:
        """Stop serving frames (the HTTP session belongs to the daemon)."""
        server, self.server = self.server, None
        if server is not None:
            await frameserver.release(server)
