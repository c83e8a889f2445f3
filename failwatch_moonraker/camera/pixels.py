"""A picture's pixel size from its header, and the decompression-bomb limit.

A JPEG's size on the wire says little about its size in memory: a 1.2 MB
9000x9000 picture decodes to 243 MB of RGB, and Pillow's flips, conversions and
drawing hold several copies (+930 MiB measured). So every picture is measured
from its header before anything decodes it, and refused above ``[camera]
max_pixels``. Reading the SOF marker is pure Python and costs microseconds;
Pillow's own ``Image.MAX_IMAGE_PIXELS`` only warns below twice its 89 MP, so
failwatch checks explicitly wherever it decodes (:func:`open_checked`).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

DEFAULT_MAX_PIXELS = 40_000_000  # [camera] max_pixels: 40 MP

# Start-of-frame markers (baseline, progressive, lossless, ...); not DHT/JPG/DAC.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
# Cameras put a few APPn/DQT/DHT segments before SOF; a header that needs more
# steps than this is not a camera's (and the scan stays bounded whatever the data).
MAX_HEADER_STEPS = 256


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` of a JPEG from its SOF marker, or None if unreadable.

    Walks at most :data:`MAX_HEADER_STEPS` markers and never past the data; stops
    at the first scan (no SOF before it means no size).
    """
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    i = 2
    end = len(data)
    for _step in range(MAX_HEADER_STEPS):
        if i + 4 > end or data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no SOF before it
            return None
        length = (data[i + 2] << 8) | data[i + 3]
        if length < 2:
            return None
        if marker in _SOF:
            if i + 9 > end:
                return None
            height = (data[i + 5] << 8) | data[i + 6]
            width = (data[i + 7] << 8) | data[i + 8]
            return (width, height) if width and height else None
        i += 2 + length
    return None


def megapixels(pixels: float) -> str:
    """``81``, ``40``, ``0.1``, ``2.074``: a pixel count for a message."""
    return f"{pixels / 1e6:.4g}"


class TooManyPixels(ValueError):
    """A picture larger than the pixel limit; refused before it is decoded."""

    def __init__(self, what: str, size: tuple[int, int], max_pixels: int) -> None:
        width, height = size
        super().__init__(
            f"{what} is {width}x{height} pixels ({megapixels(width * height)} MP), more than "
            f"[camera] max_pixels ({megapixels(max_pixels)} MP)")
        self.size = size
        self.max_pixels = max_pixels


def check_size(size: tuple[int, int] | None, max_pixels: int, what: str) -> None:
    """Raise :class:`TooManyPixels` if ``size`` is over the limit (None passes)."""
    if size is not None and size[0] * size[1] > max_pixels:
        raise TooManyPixels(what, size, max_pixels)


def check_jpeg(data: bytes, max_pixels: int, what: str) -> tuple[int, int] | None:
    """The JPEG's size, or :class:`TooManyPixels`; None if its header is unreadable.

    An unreadable header is not refused here: whatever decodes the picture in
    failwatch goes through :func:`open_checked`, which checks Pillow's header.
    """
    size = jpeg_size(data)
    check_size(size, max_pixels, what)
    return size


def open_checked(data: bytes, max_pixels: int, what: str) -> Image.Image:
    """A Pillow image of ``data`` whose header passed the limit, not yet decoded.

    ``Image.open`` reads only the header; the pixels are decoded on first use,
    after the check. Any format Pillow reads (``detect`` takes PNG too).
    """
    from PIL import Image

    check_jpeg(data, max_pixels, what)
    img = Image.open(io.BytesIO(data))
    try:
        check_size(img.size, max_pixels, what)
    except TooManyPixels:
        img.close()
        raise
    return img
