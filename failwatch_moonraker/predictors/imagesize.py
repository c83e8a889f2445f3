"""The pixel size of a JPEG from its header, without decoding it.

Backends that answer in a coordinate space of their own (PrintWatch's 640-px
square) need the sent image's size to give boxes in its pixels; reading the
SOF marker costs microseconds where decoding costs milliseconds.
"""

from __future__ import annotations

# Start-of-frame markers (baseline, progressive, lossless, ...); not DHT/JPG/DAC.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` of a JPEG, or None if the header cannot be read."""
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    i = 2
    end = len(data)
    while i + 4 <= end:
        if data[i] != 0xFF:
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
