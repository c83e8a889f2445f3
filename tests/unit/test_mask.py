"""Mask geometry: parsing, coverage, painting in the user's view, dropping detections."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from failwatch_moonraker.camera.annotate import draw
from failwatch_moonraker.camera.mask import (
    HATCH_COLOUR,
    MAX_RECTS,
    Rect,
    covers_everything,
    drop_masked,
    format_mask,
    parse_mask,
)
from failwatch_moonraker.camera.snapshot import CameraSource, transform_jpeg
from failwatch_moonraker.predictors.base import Prediction
from sim.drawn import marked_jpeg

ALLOWED = ("one or more rectangles x1,y1,x2,y2 (left, top, right, bottom, as fractions "
           "from 0 to 1 of the frame's width and height), separated by ';'")


# -- parsing -----------------------------------------------------------------


def test_parse_one_and_several_rectangles() -> None:
    assert parse_mask("0,0,0.25,0.15") == (Rect(0.0, 0.0, 0.25, 0.15),)
    assert parse_mask(" 0, 0, .25, .15;0.8,0.7,1,1 ;") == (
        Rect(0.0, 0.0, 0.25, 0.15), Rect(0.8, 0.7, 1.0, 1.0))
    assert parse_mask("0,0,0.1,0.1\n0.9,0.9,1,1") == (Rect(0, 0, 0.1, 0.1), Rect(0.9, 0.9, 1, 1))
    assert parse_mask("") == () and parse_mask("  ;\n") == ()
    assert format_mask(parse_mask("0,0,0.25,0.15;0.8,0.7,1,1")) == "0,0,0.25,0.15;0.8,0.7,1,1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0.1,0.2,0.3", f"rectangle 1 '0.1,0.2,0.3' is not 4 numbers; write {ALLOWED}"),
        ("0,0,.1,.1;0.3,0.3,a,1",
         f"rectangle 2 '0.3,0.3,a,1' is not 4 numbers; write {ALLOWED}"),
        ("0,0,0.1,0.1,0.5", f"rectangle 1 '0,0,0.1,0.1,0.5' is not 4 numbers; write {ALLOWED}"),
        ("0,0,nan,1", f"rectangle 1 '0,0,nan,1' is not 4 numbers; write {ALLOWED}"),
        ("0,0,1.5,1",
         "rectangle 1 '0,0,1.5,1': x2 is 1.5, must be from 0 to 1 (a fraction of the "
         "frame's width)"),
        ("0,-0.1,0.5,1",
         "rectangle 1 '0,-0.1,0.5,1': y1 is -0.1, must be from 0 to 1 (a fraction of the "
         "frame's height)"),
        ("10,10,50,50",
         "rectangle 1 '10,10,50,50': x1 is 10, must be from 0 to 1 (a fraction of the "
         "frame's width)"),
        ("0.5,0,0.2,1",
         "rectangle 1 '0.5,0,0.2,1': x2 (0.2) must be greater than x1 (0.5); give the "
         "top-left corner first, then the bottom-right one"),
        ("0,0.4,1,0.4",
         "rectangle 1 '0,0.4,1,0.4': y2 (0.4) must be greater than y1 (0.4); give the "
         "top-left corner first, then the bottom-right one"),
        ("0,0,1,1",
         "the rectangles cover the whole frame, so nothing would be watched; mask only the "
         "parts to ignore"),
        (";".join(["0,0,0.1,0.1"] * (MAX_RECTS + 1)), f"at most {MAX_RECTS} rectangles, got 33"),
    ],
)
def test_parse_errors_say_what_is_allowed(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_mask(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("rects", "covered"),
    [
        ([Rect(0, 0, 1, 1)], True),
        ([Rect(0, 0, 0.5, 1), Rect(0.5, 0, 1, 1)], True),  # halves meeting at an edge
        ([Rect(0, 0, 0.6, 0.6), Rect(0.4, 0, 1, 0.6), Rect(0, 0.5, 1, 1)], True),  # overlaps
        ([Rect(0, 0, 0.5, 1), Rect(0.5001, 0, 1, 1)], False),  # a thin gap stays watched
        ([Rect(0, 0, 1, 0.5), Rect(0, 0.5, 0.99, 1)], False),  # a corner strip
        ([Rect(0.1, 0.1, 0.9, 0.9)], False),
        # four rectangles framing a hole in the middle
        ([Rect(0, 0, 1, 0.4), Rect(0, 0.6, 1, 1), Rect(0, 0, 0.4, 1), Rect(0.6, 0, 1, 1)],
         False),
    ],
)
def test_coverage_is_exact(rects: list[Rect], covered: bool) -> None:
    assert covers_everything(rects) is covered


def test_a_mask_of_two_halves_is_refused_like_one_whole() -> None:
    with pytest.raises(ValueError, match="cover the whole frame"):
        parse_mask("0,0,0.5,1;0.5,0,1,1")
    assert len(parse_mask("0,0,0.5,1;0.5001,0,1,1")) == 2


# -- dropping detections -------------------------------------------------------

SIZE = (1000, 500)
MASK = (Rect(0.0, 0.0, 0.2, 0.2),)  # pixels x 0..200, y 0..100


@pytest.mark.parametrize(
    ("centre", "dropped"),
    [
        ((100.0, 50.0), True),  # well inside
        ((200.0, 50.0), True),  # exactly on the right border: inside
        ((100.0, 100.0), True),  # exactly on the bottom border: inside
        ((200.0, 100.0), True),  # the corner
        ((0.0, 0.0), True),  # the frame's own corner
        ((200.01, 50.0), False),  # just outside
        ((100.0, 100.01), False),
        ((600.0, 300.0), False),
    ],
)
def test_detections_centred_in_the_mask_are_dropped_borders_included(
        centre: tuple[float, float], dropped: bool) -> None:
    outside = (0.5, (800.0, 400.0, 40.0, 40.0))
    pred = Prediction(p=0.9, detections=((0.4, (*centre, 500.0, 500.0)), outside))
    out = drop_masked(pred, MASK, SIZE)
    assert out.detections == ((outside,) if dropped else pred.detections)


def test_obico_sum_of_confidences_is_recomputed() -> None:
    # Obico's p is the sum of the confidences: what remains is the sum of the kept ones.
    pred = Prediction(p=0.9, detections=((0.4, (50.0, 50.0, 10.0, 10.0)),
                                         (0.5, (800.0, 400.0, 10.0, 10.0))), raw={"p": 0.9})
    out = drop_masked(pred, MASK, SIZE)
    assert out.p == pytest.approx(0.5)
    assert out.raw == {"p": 0.9}  # the backend's answer as it was, for the record


def test_every_box_in_the_mask_leaves_no_score() -> None:
    # PrintWatch's score is its own, not a sum: with all its evidence masked it is 0.
    pred = Prediction(p=0.97, detections=((0.97, (20.0, 20.0, 10.0, 10.0)),
                                          (0.97, (150.0, 90.0, 10.0, 10.0))))
    assert drop_masked(pred, MASK, SIZE) == Prediction(p=0.0, detections=())


def test_an_own_score_shrinks_with_the_share_of_confidence_dropped() -> None:
    pred = Prediction(p=0.6, detections=((0.9, (20.0, 20.0, 10.0, 10.0)),
                                         (0.3, (700.0, 300.0, 10.0, 10.0))))
    assert drop_masked(pred, MASK, SIZE).p == pytest.approx(0.6 * 0.3 / 1.2)


def test_nothing_dropped_leaves_the_prediction_as_given() -> None:
    pred = Prediction(p=0.7, detections=((0.7, (700.0, 300.0, 10.0, 10.0)),))
    assert drop_masked(pred, MASK, SIZE) is pred
    boxless = Prediction(p=0.7)  # a score without boxes: nothing to drop
    assert drop_masked(boxless, MASK, SIZE) is boxless
    inside = Prediction(p=0.7, detections=((0.7, (10.0, 10.0, 5.0, 5.0)),))
    assert drop_masked(inside, (), SIZE) is inside  # no mask
    assert drop_masked(inside, MASK, None) is inside  # unknown frame size


# -- painting --------------------------------------------------------------


def _grid_jpeg(size: tuple[int, int] = (200, 100)) -> bytes:
    """A picture with a distinct bright colour in each 20x20 cell."""
    img = Image.new("RGB", size)
    for x in range(0, size[0], 20):
        for y in range(0, size[1], 20):
            img.paste((80 + x % 160, 250 - y, 200), (x, y, x + 20, y + 20))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _pixel(img: Image.Image, xy: tuple[int, int]) -> tuple[int, int, int]:
    return img.convert("RGB").getpixel(xy)  # type: ignore[return-value]


def _close(a: tuple[int, int, int], b: tuple[int, int, int], tolerance: int = 24) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def test_painting_blacks_out_the_mask_and_leaves_the_rest() -> None:
    original = Image.open(io.BytesIO(_grid_jpeg()))
    out = Image.open(io.BytesIO(transform_jpeg(_grid_jpeg(), CameraSource("x"),
                                               mask=(Rect(0.0, 0.0, 0.3, 0.4),))))
    assert out.size == (200, 100)
    for xy in [(0, 0), (30, 20), (58, 38)]:  # inside x < 60, y < 40
        assert _close(_pixel(out, xy), (0, 0, 0)), xy
    for xy in [(70, 10), (150, 80), (10, 60), (199, 99)]:  # outside, away from the edge
        assert _close(_pixel(out, xy), _pixel(original, xy)), xy


def _white_pixels(img: Image.Image) -> int:
    return int((np.asarray(img.convert("RGB"), dtype=int).sum(axis=2) > 600).sum())


def _share_near(img: Image.Image, colour: tuple[int, int, int], tolerance: int) -> float:
    """The share of ``img``'s pixels within ``tolerance`` of ``colour`` on every channel."""
    pixels = np.asarray(img.convert("RGB"), dtype=int)
    return float((np.abs(pixels - np.array(colour)) <= tolerance).all(axis=2).mean())


# Where the raw top-left block appears in the user's view, as fractions of that view.
@pytest.mark.parametrize(
    ("flip_h", "flip_v", "rotation", "where_seen", "elsewhere"),
    [
        (False, False, 0, "0,0,0.25,0.25", "0.75,0,1,0.25"),
        (True, False, 0, "0.75,0,1,0.25", "0,0,0.25,0.25"),  # mirrored: top-right
        (False, True, 0, "0,0.75,0.25,1", "0,0,0.25,0.25"),  # upside down: bottom-left
        (False, False, 90, "0.75,0,1,0.25", "0,0,0.25,0.25"),  # clockwise: top-right
        (False, False, 180, "0.75,0.75,1,1", "0,0,0.25,0.25"),
        (False, False, 270, "0,0.75,0.25,1", "0.75,0,1,0.25"),
        (True, False, 90, "0.75,0.75,1,1", "0.75,0,1,0.25"),  # flip, then turn
    ],
)
def test_a_mask_in_the_users_view_covers_the_right_raw_pixels(
        flip_h: bool, flip_v: bool, rotation: int, where_seen: str, elsewhere: str) -> None:
    source = CameraSource("x", "", flip_h, flip_v, rotation)
    unmasked = Image.open(io.BytesIO(transform_jpeg(marked_jpeg(), source)))
    assert _white_pixels(unmasked) >= 40
    masked = Image.open(io.BytesIO(transform_jpeg(marked_jpeg(), source,
                                                  mask=parse_mask(where_seen))))
    assert masked.size == unmasked.size
    assert _white_pixels(masked) == 0
    missed = Image.open(io.BytesIO(transform_jpeg(marked_jpeg(), source,
                                                  mask=parse_mask(elsewhere))))
    assert _white_pixels(missed) >= 40


def test_rect_box_takes_every_touched_pixel() -> None:
    assert Rect(0.0, 0.0, 0.3, 0.4).box((200, 100)) == (0, 0, 60, 40)
    assert Rect(0.101, 0.5, 0.2, 1.0).box((100, 3)) == (10, 1, 20, 3)


def test_annotated_snapshot_hatches_the_mask_not_solid() -> None:
    grey = Image.new("RGB", (240, 120), (90, 90, 90))
    buf = io.BytesIO()
    grey.save(buf, format="JPEG", quality=95)
    out = Image.open(io.BytesIO(draw(buf.getvalue(), [], "caption",
                                     mask=(Rect(0.5, 0.5, 1.0, 1.0),))))
    area = out.crop((124, 64, 236, 116))
    assert _share_near(area, HATCH_COLOUR, 60) > 0.08  # diagonal lines...
    assert _share_near(area, (90, 90, 90), 30) > 0.5  # ...with the picture between them
    assert _share_near(out.crop((10, 40, 110, 58)), (90, 90, 90), 30) == 1.0


def test_a_greyscale_camera_is_masked_too() -> None:
    buf = io.BytesIO()
    Image.new("L", (100, 50), 200).save(buf, format="JPEG", quality=95)
    out = Image.open(io.BytesIO(transform_jpeg(buf.getvalue(), CameraSource("x"),
                                               mask=(Rect(0.5, 0.0, 1.0, 1.0),))))
    pixels = np.asarray(out.convert("L"), dtype=int)
    assert pixels[:, 52:].max() < 20 and pixels[:, :48].min() > 180
