"""Drawn camera pictures for the real local models: a bed, a printed part, spaghetti.

Drawn here (no photos are committed): the printed part is the sim camera's usual
scene; the tangle is many thin random curves of filament over the same bed, the
shape PiNozCam's model calls a failure.
"""

from __future__ import annotations

import functools
import io
import math

import numpy as np
from PIL import Image, ImageDraw

from sim.camera import make_snapshot_jpeg

__all__ = ["bed_jpeg", "part_jpeg", "spaghetti_jpeg", "portrait"]


def _bed(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    pixels = np.empty((height, width, 3), np.float32)
    pixels[..., 0] = 60 + 80 * y + 20 * x
    pixels[..., 1] = 70 + 60 * y
    pixels[..., 2] = 90 + 40 * (1 - x)
    pixels += rng.normal(0.0, 6.0, (height, width, 1)).astype(np.float32)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    w, h = width, height
    top = int(h * 0.62)
    draw.rectangle((0, top, w, h), fill=(40, 40, 48))
    draw.polygon([(int(w * 0.1), h), (int(w * 0.25), top), (int(w * 0.75), top),
                  (int(w * 0.9), h)], fill=(25, 25, 30), outline=(200, 200, 200))
    for i in range(12):
        draw.line([(int(w * 0.1) + i * int(w * 0.8 / 11), h),
                   (int(w * 0.25) + i * int(w * 0.5 / 11), top)], fill=(70, 70, 80), width=2)
    return image


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


@functools.lru_cache(maxsize=8)
def bed_jpeg(width: int = 1280, height: int = 720, seed: int = 1) -> bytes:
    """An empty bed."""
    return _jpeg(_bed(width, height, seed))


def part_jpeg(width: int = 1280, height: int = 720, seed: int = 1) -> bytes:
    """A healthy print: a part with layer lines on the bed."""
    return make_snapshot_jpeg(width, height, seed)


@functools.lru_cache(maxsize=8)
def spaghetti_jpeg(width: int = 1280, height: int = 720, seed: int = 1,
                   colour: tuple[int, int, int] = (255, 140, 30)) -> bytes:
    """A tangle of thin filament over most of the bed's middle."""
    image = _bed(width, height, seed)
    draw = ImageDraw.Draw(image)
    rng = np.random.default_rng(seed + 100)
    cx, cy = width * 0.5, height * 0.55
    rx, ry = width * 0.28, height * 0.32
    line = max(2, round(width / 320))
    for _ in range(60):
        x, y = cx + rng.uniform(-rx, rx), cy + rng.uniform(-ry, ry)
        angle = rng.uniform(0, 2 * math.pi)
        points = [(x, y)]
        for _ in range(30):
            angle += rng.normal(0.0, 0.6)
            step = width / 90
            x = min(max(x + step * math.cos(angle), cx - rx), cx + rx)
            y = min(max(y + step * math.sin(angle), cy - ry), cy + ry)
            points.append((x, y))
        shade = tuple(int(c * rng.uniform(0.75, 1.0)) for c in colour)
        draw.line(points, fill=shade, width=line, joint="curve")
    return _jpeg(image)


def portrait(jpeg: bytes) -> bytes:
    """The same picture as a portrait camera sends it (turned 90 degrees counter-clockwise)."""
    with Image.open(io.BytesIO(jpeg)) as img:
        return _jpeg(img.transpose(Image.Transpose.ROTATE_90))


def tangle_box(width: int = 1280, height: int = 720) -> tuple[float, float, float, float]:
    """Where :func:`spaghetti_jpeg` draws the tangle: (x1, y1, x2, y2) in pixels."""
    cx, cy = width * 0.5, height * 0.55
    rx, ry = width * 0.28, height * 0.32
    return cx - rx, cy - ry, cx + rx, cy + ry


def marked_jpeg() -> bytes:
    """A 40x20 raw camera picture, black with a white block at its top-left corner, to
    see where flips, rotations and masks move it."""
    img = Image.new("RGB", (40, 20), "black")
    img.paste((255, 255, 255), (0, 0, 10, 5))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95)
    return buf.getvalue()
