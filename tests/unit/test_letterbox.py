"""Letterboxing onto the model's canvas and the mapping of its boxes back to the frame."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from failwatch_moonraker.predictors.base import BadRequest
from failwatch_moonraker.predictors.local.letterbox import (
    content_rect,
    letterbox,
    place,
    to_frame,
)

W, H = 640, 384


@pytest.mark.parametrize(("size", "rect"), [
    ((1280, 720), (0, 12, 640, 360)),  # PiNozCam's own example
    ((1920, 1080), (0, 12, 640, 360)),
    ((640, 480), (64, 0, 512, 384)),
    ((640, 384), (0, 0, 640, 384)),
    ((1000, 100), (0, 160, 640, 64)),
    ((333, 211), (17, 0, 606, 384)),
    ((1, 1), (128, 0, 384, 384)),
])
def test_content_rect(size: tuple[int, int], rect: tuple[int, int, int, int]) -> None:
    assert content_rect(*size, W, H) == rect


def test_portrait_is_turned_clockwise_first() -> None:
    where = place(720, 1280, W, H)
    assert where.rotated and (where.x, where.y, where.w, where.h) == (0, 12, 640, 360)
    assert not place(1280, 720, W, H).rotated
    assert not place(500, 500, W, H).rotated


def _jpeg(width: int, height: int, square: tuple[int, int, int, int]) -> bytes:
    img = Image.new("RGB", (width, height), (0, 0, 0))
    ImageDraw.Draw(img).rectangle(square, fill=(255, 255, 255))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=95)
    return out.getvalue()


@pytest.mark.parametrize(("size", "square"), [
    ((1280, 720), (100, 50, 399, 249)),
    ((720, 1280), (100, 50, 399, 249)),  # portrait: top-left of the frame
    ((480, 640), (300, 500, 459, 619)),  # portrait, bottom-right
    ((333, 211), (10, 20, 110, 120)),  # odd size
    ((1000, 100), (900, 10, 989, 89)),  # very wide
])
def test_a_drawn_square_comes_back_where_it_was(
        size: tuple[int, int], square: tuple[int, int, int, int]) -> None:
    parts, where = letterbox(_jpeg(*size, square), W, H)
    canvas = b"".join(parts)
    assert len(canvas) == W * H * 3
    pixels = np.frombuffer(canvas, np.uint8).reshape(H, W, 3)
    bright = np.argwhere(pixels.mean(axis=2) > 128)
    (y1, x1), (y2, x2) = bright.min(axis=0), bright.max(axis=0) + 1
    # Everything outside the content rectangle is black (the bars).
    inside = np.zeros((H, W), bool)
    inside[where.y:where.y + where.h, where.x:where.x + where.w] = True
    assert pixels[~inside].max() == 0
    xc, yc, w, h = to_frame((float(x1), float(y1), float(x2), float(y2)), where)
    sx1, sy1, sx2, sy2 = square
    tol = max(size) / W * 2 + 1  # two canvas pixels, in frame pixels
    assert xc == pytest.approx((sx1 + sx2 + 1) / 2, abs=tol)
    assert yc == pytest.approx((sy1 + sy2 + 1) / 2, abs=tol)
    assert w == pytest.approx(sx2 - sx1 + 1, abs=2 * tol)
    assert h == pytest.approx(sy2 - sy1 + 1, abs=2 * tol)


def test_boxes_into_the_bars_are_clipped_to_the_frame() -> None:
    where = place(1280, 720, W, H)
    assert to_frame((-50.0, 0.0, 700.0, 384.0), where) == (640.0, 360.0, 1280.0, 720.0)
    portrait = place(720, 1280, W, H)
    # The canvas's content is the frame turned clockwise: its top-left quarter is the
    # frame's bottom-left quarter.
    assert to_frame((0.0, 12.0, 320.0, 192.0), portrait) == pytest.approx(
        (180.0, 960.0, 360.0, 640.0))


def test_not_a_picture_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="not a picture"):
        letterbox(b"<html>camera offline</html>", W, H)
