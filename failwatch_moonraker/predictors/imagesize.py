"""The pixel size of a JPEG from its header, without decoding it.

Backends that answer in a coordinate space of their own (PrintWatch's 640-px
square) need the sent image's size to give boxes in its pixels. The reader
lives with the camera (:mod:`failwatch_moonraker.camera.pixels`), which also
uses it for the decompression-bomb limit; this name is kept for the backends.
"""

from __future__ import annotations

from failwatch_moonraker.camera.pixels import jpeg_size

__all__ = ["jpeg_size"]
