"""Webcam snapshots: find the camera, fetch one JPEG, orient and mask it if asked.

Every snapshot's pixel size is read from its header and refused above
``[camera] max_pixels`` before anything decodes it (a decompression bomb costs
nearly a GiB). The bytes then pass through untouched unless a flip, a rotation
or a mask is set; Pillow is imported only then, orientation and mask share one
decode and one encode, and that runs in a worker thread so the event loop never
waits on it.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from failwatch_moonraker.camera.mask import Rect, paint
from failwatch_moonraker.camera.pixels import (
    DEFAULT_MAX_PIXELS,
    TooManyPixels,
    check_jpeg,
    jpeg_size,
    open_checked,
)

log = logging.getLogger(__name__)

JPEG_MAGIC = b"\xff\xd8\xff"
_ROTATIONS = (0, 90, 180, 270)


class CameraError(Exception):
    """A snapshot could not be had; the message says what to check."""


@dataclass(frozen=True)
class CameraSource:
    """Where snapshots come from and how to orient them."""

    url: str
    name: str = ""
    flip_horizontal: bool = False
    flip_vertical: bool = False
    rotation: int = 0

    @property
    def needs_transform(self) -> bool:
        return self.flip_horizontal or self.flip_vertical or self.rotation % 360 != 0


def web_base_from_moonraker(moonraker_url: str) -> str:
    """The web server relative webcam URLs live on: Moonraker's host, port 80.

    Mainsail and Fluidd resolve ``/webcam/...`` against the page's host, which
    is nginx on the Moonraker machine, not Moonraker's own port.
    """
    parts = urlsplit(moonraker_url)
    scheme = "https" if parts.scheme in ("wss", "https") else "http"
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}"


def resolve_url(url: str, web_base: str) -> str:
    """An absolute snapshot URL from what the user or Moonraker configured."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        return url
    if url.startswith("//"):
        return urlsplit(web_base).scheme + ":" + url
    path = url if url.startswith("/") else "/" + url
    base = urlsplit(web_base)
    tail = urlsplit(path)
    return urlunsplit((base.scheme, base.netloc, tail.path, tail.query, tail.fragment))


def snapshot_url_of(webcam: dict[str, Any]) -> str:
    """A webcam's snapshot URL, derived from its stream URL if it has none."""
    snap = webcam.get("snapshot_url") or ""
    if snap:
        return str(snap)
    stream = str(webcam.get("stream_url") or "")
    if "action=stream" in stream:
        return stream.replace("action=stream", "action=snapshot")
    for suffix in ("/stream", "/webrtc", "/video"):
        if stream.rstrip("/").endswith(suffix):
            return stream.rstrip("/")[: -len(suffix)] + "/snapshot"
    return ""


def pick_webcam(webcams: list[dict[str, Any]], name: str = "") -> dict[str, Any] | None:
    """The named webcam, else the first enabled one that can give a snapshot.

    Entries that are not objects (a broken answer) are skipped.
    """
    if not isinstance(webcams, list):
        return None
    webcams = [cam for cam in webcams if isinstance(cam, dict)]
    if name:
        for cam in webcams:
            if cam.get("name") == name:
                return cam
        return None
    for cam in webcams:
        if cam.get("enabled", True) and snapshot_url_of(cam):
            return cam
    return None


def source_from_webcam(
    webcam: dict[str, Any],
    web_base: str,
    flip_horizontal: bool | None = None,
    flip_vertical: bool | None = None,
    rotation: int | None = None,
) -> CameraSource:
    """Moonraker's webcam entry, with the user's explicit settings on top."""
    cam_rotation = webcam.get("rotation", 0)
    if cam_rotation not in _ROTATIONS:
        cam_rotation = 0
    return CameraSource(
        url=resolve_url(snapshot_url_of(webcam), web_base),
        name=str(webcam.get("name", "")),
        flip_horizontal=bool(webcam.get("flip_horizontal"))
        if flip_horizontal is None
        else flip_horizontal,
        flip_vertical=bool(webcam.get("flip_vertical")) if flip_vertical is None else flip_vertical,
        rotation=int(cam_rotation) if rotation is None else rotation,
    )


@dataclass(frozen=True)
class Frame:
    """A snapshot as the predictors get it: oriented, masked, and its pixel size
    (from the JPEG header; None if unreadable) for mapping detections to the mask."""

    jpeg: bytes
    size: tuple[int, int] | None


def transform_jpeg(data: bytes, source: CameraSource, quality: int = 90, *,
                   mask: Sequence[Rect] = (), max_pixels: int = DEFAULT_MAX_PIXELS,
                   what: str = "the snapshot") -> bytes:
    """Flip, then rotate clockwise, as the camera's settings in Mainsail say, then
    paint the mask out (it is given in that oriented view): one decode, one encode.

    Raises :class:`~failwatch_moonraker.camera.pixels.TooManyPixels` before
    decoding a picture above ``max_pixels``.
    """
    from PIL import Image  # only configurations that need it pay for it

    with open_checked(data, max_pixels, what) as img:
        out = img.convert("RGB") if img.mode not in ("RGB", "L") else img.copy()
    if source.flip_horizontal:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if source.flip_vertical:
        out = out.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    rotation = source.rotation % 360
    if rotation == 90:
        out = out.transpose(Image.Transpose.ROTATE_270)  # PIL turns anticlockwise
    elif rotation == 180:
        out = out.transpose(Image.Transpose.ROTATE_180)
    elif rotation == 270:
        out = out.transpose(Image.Transpose.ROTATE_90)
    paint(out, mask)
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


class Camera:
    """One camera's snapshots, refused above ``max_pixels``, oriented as ``source`` says
    and with ``mask`` (rectangles in that oriented view) painted out."""

    def __init__(self, session: aiohttp.ClientSession, timeout: float, max_size: int, *,
                 max_pixels: int = DEFAULT_MAX_PIXELS, mask: Sequence[Rect] = ()) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self.max_size = max_size
        self.max_pixels = max_pixels
        self.mask: tuple[Rect, ...] = tuple(mask)
        self.source: CameraSource | None = None

    async def snapshot(self) -> bytes:
        """The JPEG of :meth:`frame`."""
        return (await self.frame()).jpeg

    async def frame(self) -> Frame:
        """One snapshot, checked, oriented and masked; CameraError says what to check."""
        source = self.source
        if source is None:
            raise CameraError(
                "no camera: set [camera] snapshot_url in failwatch.cfg or add a webcam in "
                "Mainsail/Fluidd (Moonraker's webcam list is empty)"
            )
        data = await self.fetch(source.url)
        try:
            size = check_jpeg(data, self.max_pixels, f"snapshot from {source.url}")
            if not source.needs_transform and not self.mask:
                return Frame(data, size)
            data = await asyncio.to_thread(transform_jpeg, data, source, mask=self.mask,
                                           max_pixels=self.max_pixels,
                                           what=f"snapshot from {source.url}")
        except TooManyPixels as exc:
            raise CameraError(f"{exc}; lower the camera's resolution in crowsnest") from None
        except Exception as exc:  # Pillow raises many kinds on damaged data
            raise CameraError(f"cannot decode the snapshot from {source.url}: {exc}") from None
        return Frame(data, jpeg_size(data))

    async def fetch(self, url: str) -> bytes:
        """GET one JPEG with a timeout and a size cap."""
        timeout = self._timeout.total
        try:
            async with self._session.get(url, timeout=self._timeout) as resp:
                if resp.status != 200:
                    raise CameraError(f"snapshot URL {url} answered HTTP {resp.status}")
                if resp.content_length is not None and resp.content_length > self.max_size:
                    raise CameraError(self._too_big(url))
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(65536):
                    size += len(chunk)
                    if size > self.max_size:
                        raise CameraError(self._too_big(url))
                    chunks.append(chunk)
                content_type = resp.headers.get("Content-Type", "?")
        except asyncio.TimeoutError:
            raise CameraError(f"snapshot URL {url} gave no image within {timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise CameraError(f"cannot reach the camera at {url}: {exc}") from None
        data = b"".join(chunks)
        if not data.startswith(JPEG_MAGIC):
            head = data[:16].decode("ascii", "replace").strip() or "nothing"
            raise CameraError(
                f"snapshot URL {url} did not return a JPEG (Content-Type {content_type}, "
                f"starts with {head!r}); is it the camera's snapshot URL?"
            )
        return data

    def _too_big(self, url: str) -> str:
        return (
            f"snapshot from {url} is larger than {self.max_size // 1024} KiB; is snapshot_url "
            "a stream URL? (ustreamer/crowsnest: ...?action=snapshot)"
        )
