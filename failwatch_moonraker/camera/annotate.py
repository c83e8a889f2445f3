"""Annotated snapshots: the frame that warned or paused, with the boxes drawn.

The masked areas are hatched (see :mod:`.mask`) so the user sees what failwatch
ignores, and a picture above the pixel limit is refused before it is decoded.

Saved where Moonraker serves files (under ``printer_data/logs`` by default) so
the console line can link it and Mainsail/Fluidd can open it. Retention keeps
the folder bounded by count and by size, oldest first. Pillow is imported only
here, and all of it runs in a worker thread.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from failwatch_moonraker.camera.mask import Rect, hatch
from failwatch_moonraker.camera.pixels import DEFAULT_MAX_PIXELS, open_checked
from failwatch_moonraker.predictors.base import Detection

log = logging.getLogger(__name__)

VISUALIZATION_THRESHOLD = 0.2  # Obico draws boxes above this confidence
BOX_COLOUR = (0, 255, 0)
BOX_WIDTH = 3
SUFFIX = ".jpg"
TMP_SUFFIX = ".tmp"
MAX_NAME = 100  # characters of the level/print name kept in a file name
MAX_BOXES = 1000
_STAMP_GLOB = "[0-9]" * 8 + "-" + "[0-9]" * 6 + ".[0-9][0-9][0-9]"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def draw(jpeg: bytes, detections: Sequence[Detection], caption: str,
         threshold: float = VISUALIZATION_THRESHOLD, *, mask: Sequence[Rect] = (),
         max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """The frame with the mask hatched, a green box per detection above ``threshold``
    and a caption; TooManyPixels (a ValueError) above ``max_pixels``, undecoded."""
    from PIL import ImageDraw

    with open_checked(jpeg, max_pixels, "the snapshot to annotate") as img:
        out = img.convert("RGB")
    hatch(out, mask)
    pen = ImageDraw.Draw(out)
    for conf, (xc, yc, w, h) in detections[:MAX_BOXES]:
        box = drawable_box(conf, xc, yc, w, h, out.size)
        if box is None or conf <= threshold:
            continue
        pen.rectangle(box, outline=BOX_COLOUR, width=BOX_WIDTH)
        pen.text((box[0] + 4, max(0.0, box[1] - 12)), f"{conf:.2f}", fill=BOX_COLOUR)
    text_box = pen.textbbox((8, 8), caption)
    pen.rectangle((4, 4, text_box[2] + 4, text_box[3] + 4), fill=(0, 0, 0))
    pen.text((8, 8), caption, fill=(255, 255, 255))
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def drawable_box(conf: float, xc: float, yc: float, w: float, h: float,
                 size: tuple[int, int]) -> tuple[float, float, float, float] | None:
    """``(x0, y0, x1, y1)`` clipped to the picture, or None for a box not worth drawing.

    Inverted (negative size), NaN or infinite boxes are skipped: Pillow raises on
    an inverted rectangle, and a crash of the drawing would lose the snapshot.
    """
    values = (conf, xc, yc, w, h)
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        return None
    if w < 0 or h < 0:
        return None
    width, height = size
    x0 = min(max(xc - w / 2, 0.0), width - 1.0)
    y0 = min(max(yc - h / 2, 0.0), height - 1.0)
    x1 = min(max(xc + w / 2, 0.0), width - 1.0)
    y1 = min(max(yc + h / 2, 0.0), height - 1.0)
    if x1 < x0 or y1 < y0:
        return None
    return (x0, y0, x1, y1)


def snapshot_name(stamp: str, name: str) -> str:
    """``<stamp>-<name>.jpg``, safe and short whatever the name (a fallback print id
    can be hundreds of characters; file systems allow 255 bytes)."""
    safe = _SAFE.sub("_", name)[:MAX_NAME] or "snapshot"
    return f"{stamp}-{safe}{SUFFIX}"


@dataclass
class SavedSnapshot:
    path: Path
    link: str  # what the console shows: a URL Moonraker serves, or the file path


class SnapshotStore:
    def __init__(self, folder: str, max_count: int, max_size: int, public_url: str = "", *,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.folder = Path(folder).expanduser()
        self.max_count = max_count
        self.max_size = max_size
        self.public_url = public_url.rstrip("/")
        self.max_pixels = max_pixels
        self._failed = False
        self.remove_temporary()

    def remove_temporary(self) -> list[Path]:
        """Delete ``.tmp`` files a kill left in the middle of a save (at start-up)."""
        removed: list[Path] = []
        try:
            # Only our own names (<stamp>-<name>.tmp): the folder may hold others' files.
            leftovers = list(self.folder.glob(f"{_STAMP_GLOB}-*{TMP_SUFFIX}"))
        except OSError:
            return removed
        for tmp in leftovers:
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
        if removed:
            log.info("snapshots: removed %d temporary file(s) left by an interrupted save in %s",
                     len(removed), self.folder)
        return removed

    def link_for(self, path: Path) -> str:
        """Moonraker serves ``<data>/logs`` as the ``logs`` root: /server/files/logs/..."""
        parts = path.parts
        if "logs" in parts:
            index = len(parts) - 1 - parts[::-1].index("logs")
            rel = "/".join(parts[index + 1:])
            url = f"/server/files/logs/{rel}"
            return f"{self.public_url}{url}" if self.public_url else url
        return str(path)

    def save(self, jpeg: bytes, detections: Sequence[Detection], caption: str,
             name: str, *, mask: Sequence[Rect] = ()) -> SavedSnapshot | None:
        """Draw (the mask hatched), write and prune; blocking, so run it in a thread.
        None when it failed (a picture over the pixel limit too, logged)."""
        try:
            data = draw(jpeg, detections, caption, mask=mask, max_pixels=self.max_pixels)
            self.folder.mkdir(parents=True, exist_ok=True)
            now = time.time()
            stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"{now % 1:.3f}"[1:]
            path = self.folder / snapshot_name(stamp, name)
            tmp = path.with_suffix(TMP_SUFFIX)
            tmp.write_bytes(data)
            os.replace(tmp, path)
            self.prune()
        except Exception as exc:  # a full disk must not stop the pause
            if not self._failed:
                log.error("snapshots: cannot save an annotated snapshot in %s: %s",
                          self.folder, exc)
            self._failed = True
            return None
        self._failed = False
        return SavedSnapshot(path, self.link_for(path))

    def prune(self) -> list[Path]:
        """Delete the oldest snapshots beyond the count and size caps."""
        files = sorted(self.folder.glob(f"*{SUFFIX}"), key=lambda p: (p.stat().st_mtime, p.name))
        sizes = {p: p.stat().st_size for p in files}
        total = sum(sizes.values())
        removed: list[Path] = []
        while files and (len(files) > self.max_count or total > self.max_size):
            oldest = files.pop(0)
            total -= sizes[oldest]
            oldest.unlink(missing_ok=True)
            removed.append(oldest)
        return removed
