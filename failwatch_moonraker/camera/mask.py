"""Masks: parts of the camera's view that no predictor may see or count.

A clip, a purge bucket, a reflection or the toolhead's cable can look like
spaghetti to every model. ``[camera] mask`` lists rectangles ``x1,y1,x2,y2`` in
fractions of the frame (0..1, left, top, right, bottom) **as the user sees the
picture in Mainsail**, i.e. after the camera's flips and rotation; failwatch
orients the picture first and masks it second, in the same decode.

Two lines of defence:

* the masked areas are painted out (solid black, like the bars the local engines
  letterbox a frame with) before any predictor, remote or local, sees the frame;
* :func:`drop_masked` drops the detections whose centre lies inside a mask
  rectangle, a centre exactly on a rectangle's border counting as inside (a box
  that straddles the edge of a masked area is mostly a reaction to it).

The score ``p`` after dropping boxes: ``p`` is multiplied by the share of the
detections' confidence that was kept, and is 0 when every box was dropped.
For the Obico family (``obico``, ``obico_ml_api``, ``onnx``) p *is* the sum of
the confidences, so this gives exactly the sum over the boxes that remain, as
if the server had never seen the dropped ones. For backends whose p is a score
of their own (``printwatch``'s ``score``, ``pinozcam``'s ``severity``) the
boxes are the evidence behind it, so the score shrinks with them and an answer
whose every box lay in a mask can never count towards a pause. A prediction
without boxes, or with none dropped, is returned as the backend gave it.

Pure geometry except :func:`paint` and :func:`hatch`, which take a Pillow image
(the callers import Pillow, in a worker thread).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from failwatch_moonraker.predictors.base import Prediction

if TYPE_CHECKING:
    from PIL import Image

MAX_RECTS = 32
MASK_COLOUR = (0, 0, 0)  # painted-out areas, as the local engines' letterbox bars
HATCH_COLOUR = (255, 170, 0)  # annotated snapshots: amber, apart from the green boxes
HATCH_STEP = 12  # pixels between the diagonal lines
ALLOWED = ("one or more rectangles x1,y1,x2,y2 (left, top, right, bottom, as fractions "
           "from 0 to 1 of the frame's width and height), separated by ';'")
_NAMES = ("x1", "y1", "x2", "y2")


@dataclass(frozen=True)
class Rect:
    """One masked rectangle, in fractions of the frame as the user sees it."""

    x1: float
    y1: float
    x2: float
    y2: float

    def contains(self, x: float, y: float, size: tuple[int, int]) -> bool:
        """Whether pixel position ``(x, y)`` of a ``size`` frame is inside; borders are."""
        width, height = size
        return self.x1 * width <= x <= self.x2 * width and \
            self.y1 * height <= y <= self.y2 * height

    def box(self, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """``(left, top, right, bottom)`` pixels (right and bottom exclusive), every pixel
        the rectangle touches, so a painted area never leaves a sliver of its content."""
        width, height = size
        left = min(width, max(0, math.floor(self.x1 * width)))
        top = min(height, max(0, math.floor(self.y1 * height)))
        right = min(width, max(left, math.ceil(self.x2 * width)))
        bottom = min(height, max(top, math.ceil(self.y2 * height)))
        return left, top, right, bottom

    def __str__(self) -> str:
        return f"{self.x1:g},{self.y1:g},{self.x2:g},{self.y2:g}"


Mask = tuple[Rect, ...]


def format_mask(mask: Sequence[Rect]) -> str:
    """The mask as the config writes it (``0,0,0.2,0.1;0.8,0,1,0.2``), for status lines."""
    return ";".join(str(rect) for rect in mask)


def _shown(item: str) -> str:
    return repr(item if len(item) <= 40 else item[:37] + "...")


def parse_mask(text: str) -> Mask:
    """The rectangles of ``[camera] mask``; ValueError says what is wrong and allowed.

    Rectangles are separated by ``;`` or line breaks; empty items are ignored, so
    an empty text is no mask.
    """
    items = [item.strip() for item in text.replace("\n", ";").split(";")]
    items = [item for item in items if item]
    if len(items) > MAX_RECTS:
        raise ValueError(f"at most {MAX_RECTS} rectangles, got {len(items)}")
    rects: list[Rect] = []
    for number, item in enumerate(items, 1):
        parts = [part.strip() for part in item.split(",")]
        values: list[float] = []
        for part in parts:
            try:
                value = float(part)
            except ValueError:
                value = math.nan
            values.append(value)
        if len(values) != 4 or not all(math.isfinite(v) for v in values):
            raise ValueError(f"rectangle {number} {_shown(item)} is not 4 numbers; "
                             f"write {ALLOWED}")
        for name, part, value in zip(_NAMES, parts, values, strict=True):
            if not 0.0 <= value <= 1.0:
                side = "width" if name.startswith("x") else "height"
                raise ValueError(f"rectangle {number} {_shown(item)}: {name} is {part}, must "
                                 f"be from 0 to 1 (a fraction of the frame's {side})")
        x1, y1, x2, y2 = values
        for low, high, v_low, v_high in (("x1", "x2", x1, x2), ("y1", "y2", y1, y2)):
            if v_high <= v_low:
                raise ValueError(f"rectangle {number} {_shown(item)}: {high} ({v_high:g}) must "
                                 f"be greater than {low} ({v_low:g}); give the top-left corner "
                                 "first, then the bottom-right one")
        rects.append(Rect(x1, y1, x2, y2))
    if rects and covers_everything(rects):
        raise ValueError("the rectangles cover the whole frame, so nothing would be watched; "
                         "mask only the parts to ignore")
    return tuple(rects)


def covers_everything(mask: Sequence[Rect]) -> bool:
    """Whether the union of the rectangles is the whole frame, exactly.

    The rectangles' edges cut the frame into cells, each either wholly inside
    some rectangle or wholly outside all of them; testing each cell's centre
    decides the union without any grid resolution.
    """
    xs = sorted({0.0, 1.0, *(r.x1 for r in mask), *(r.x2 for r in mask)})
    ys = sorted({0.0, 1.0, *(r.y1 for r in mask), *(r.y2 for r in mask)})
    for xa, xb in itertools.pairwise(xs):
        mx = (xa + xb) / 2
        for ya, yb in itertools.pairwise(ys):
            my = (ya + yb) / 2
            if not any(r.x1 <= mx <= r.x2 and r.y1 <= my <= r.y2 for r in mask):
                return False
    return True


def drop_masked(prediction: Prediction, mask: Sequence[Rect],
                size: tuple[int, int] | None) -> Prediction:
    """``prediction`` without the detections centred in the mask, p scaled (module doc).

    ``size`` is the pixel size of the frame the predictor was sent (detections
    are in its pixels); without it (or a mask, or boxes) nothing is dropped.
    """
    if not mask or not prediction.detections or size is None:
        return prediction
    kept = tuple(d for d in prediction.detections
                 if not any(rect.contains(d[1][0], d[1][1], size) for rect in mask))
    if len(kept) == len(prediction.detections):
        return prediction
    total = sum(conf for conf, _box in prediction.detections)
    if not kept:
        p = 0.0
    elif total > 0:
        p = min(prediction.p, prediction.p * sum(conf for conf, _box in kept) / total)
    else:  # every confidence 0: the dropped boxes carried no share of p
        p = prediction.p
    return Prediction(p=p, detections=kept, raw=prediction.raw)


def paint(img: Image.Image, mask: Sequence[Rect]) -> Image.Image:
    """Paint the masked areas of ``img`` solid (in place; returned for chaining)."""
    colour: int | tuple[int, int, int] = 0 if img.mode == "L" else MASK_COLOUR
    for rect in mask:
        left, top, right, bottom = rect.box(img.size)
        if right > left and bottom > top:
            img.paste(colour, (left, top, right, bottom))
    return img


def hatch(img: Image.Image, mask: Sequence[Rect], step: int = HATCH_STEP) -> Image.Image:
    """Diagonal lines and an outline over each masked area of an RGB ``img`` (in place):
    what is ignored stays visible as ignored, not as a black hole in the picture."""
    from PIL import ImageDraw

    for rect in mask:
        left, top, right, bottom = rect.box(img.size)
        width, height = right - left, bottom - top
        if width <= 0 or height <= 0:
            continue
        area = img.crop((left, top, right, bottom))
        pen = ImageDraw.Draw(area)
        for k in range(0, width + height, step):
            pen.line([(k, 0), (k - height, height)], fill=HATCH_COLOUR, width=2)
        pen.rectangle((0, 0, width - 1, height - 1), outline=HATCH_COLOUR, width=2)
        img.paste(area, (left, top))
    return img
