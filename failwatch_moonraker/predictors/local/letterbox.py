"""Frames to a model's fixed canvas, and its boxes back to the frame's pixels.

Runs in a worker thread (never on the event loop). JPEGs are decoded at the
reduced size directly (Pillow's draft mode: the decoder's DCT scaling), which is
most of what keeps a 1280x720 frame to a few ms of the daemon's CPU.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

from PIL import Image

from failwatch_moonraker.predictors.base import BadRequest


@dataclass(frozen=True)
class Placement:
    """Where a frame went on the canvas: the mapping back needs all of it."""

    frame_w: int  # the frame as received
    frame_h: int
    rotated: bool  # portrait frame turned 90 degrees clockwise first
    x: int  # content rectangle on the canvas
    y: int
    w: int
    h: int


def content_rect(width: int, height: int, canvas_w: int, canvas_h: int
                 ) -> tuple[int, int, int, int]:
    """(x, y, w, h): ``width`` x ``height`` scaled to fit the canvas, aspect kept, centred."""
    if width <= 0 or height <= 0:
        raise ValueError("empty frame")
    scale = min(canvas_w / width, canvas_h / height)
    w = max(1, min(canvas_w, round(width * scale)))
    h = max(1, min(canvas_h, round(height * scale)))
    return (canvas_w - w) // 2, (canvas_h - h) // 2, w, h


def place(width: int, height: int, canvas_w: int, canvas_h: int) -> Placement:
    """Portrait frames are turned 90 degrees clockwise, then letterboxed."""
    rotated = height > width
    rw, rh = (height, width) if rotated else (width, height)
    x, y, w, h = content_rect(rw, rh, canvas_w, canvas_h)
    return Placement(width, height, rotated, x, y, w, h)


@functools.lru_cache(maxsize=8)
def _black(n: int) -> bytes:
    return bytes(n)


def letterbox(data: bytes, canvas_w: int, canvas_h: int
              ) -> tuple[tuple[bytes, ...], Placement]:
    """Decode ``data`` (JPEG or any format Pillow reads) to the canvas's RGB bytes.

    The canvas comes back in parts to be sent one after the other: when the bars
    are above and below (most cameras), they are shared constant black rows and
    the picture is not copied onto a canvas first.
    """
    try:
        opened = Image.open(io.BytesIO(data))
        placement = place(opened.width, opened.height, canvas_w, canvas_h)
        # The content's size in the frame's own orientation: decode straight to about it.
        want = (placement.h, placement.w) if placement.rotated else (placement.w, placement.h)
        if opened.format == "JPEG":
            opened.draft("RGB", want)
        img: Image.Image = opened.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise BadRequest(f"not a picture the model can read: {exc}") from None
    if placement.rotated:
        img = img.transpose(Image.Transpose.ROTATE_270)  # 90 degrees clockwise
    size = (placement.w, placement.h)
    if img.size != size:
        img = img.resize(size)  # Pillow's default filter, as PiNozCam's client uses
    if placement.w == canvas_w:
        row = canvas_w * 3
        top, bottom = placement.y, canvas_h - placement.y - placement.h
        return (_black(top * row), img.tobytes(), _black(bottom * row)), placement
    canvas = Image.new("RGB", (canvas_w, canvas_h))
    canvas.paste(img, (placement.x, placement.y))
    return (canvas.tobytes(),), placement


def to_frame(box: tuple[float, float, float, float], where: Placement
             ) -> tuple[float, float, float, float]:
    """Canvas box (x1, y1, x2, y2) to (xc, yc, w, h) in the frame's pixels, clipped to it."""
    x1, y1, x2, y2 = box
    rw, rh = (where.frame_h, where.frame_w) if where.rotated else (where.frame_w,
                                                                     where.frame_h)
    sx, sy = rw / where.w, rh / where.h

    def clip(value: float, top: float) -> float:
        return min(max(value, 0.0), top)

    u1, u2 = clip((x1 - where.x) * sx, rw), clip((x2 - where.x) * sx, rw)
    v1, v2 = clip((y1 - where.y) * sy, rh), clip((y2 - where.y) * sy, rh)
    if where.rotated:
        # The rotated picture's (u, v) is the frame's (x, y) = (v, frame_h - u).
        fx1, fx2 = v1, v2
        fy1, fy2 = where.frame_h - u2, where.frame_h - u1
    else:
        fx1, fx2, fy1, fy2 = u1, u2, v1, v2
    return ((fx1 + fx2) / 2, (fy1 + fy2) / 2, fx2 - fx1, fy2 - fy1)
