"""Obico's pre- and post-processing: the resize equals OpenCV's, NMS and thresholds as Obico's."""

from __future__ import annotations

import numpy as np
import pytest

from failwatch_moonraker.predictors.local.obico_pipeline import (
    nms,
    postprocess,
    resize_linear,
    to_input,
)

cv2 = pytest.importorskip("cv2")  # opencv-python-headless: a test-only dependency


@pytest.mark.parametrize("width, height", [
    (1280, 720), (640, 480), (1920, 1080), (800, 600), (416, 416), (832, 832), (500, 333),
    (320, 240), (417, 415), (100, 900), (3, 2), (1, 1)])
def test_resize_is_opencv_inter_linear_bit_for_bit(width: int, height: int) -> None:
    rng = np.random.default_rng(width * 7919 + height)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    ours = resize_linear(image, 416, 416)
    theirs = cv2.resize(image, (416, 416), interpolation=cv2.INTER_LINEAR)
    assert ours.shape == theirs.shape == (416, 416, 3)
    assert np.array_equal(ours, theirs)


def test_resize_other_target_sizes_and_smooth_pictures() -> None:
    y, x = np.mgrid[0:720, 0:1280]
    image = np.stack([(x * 255 // 1279), (y * 255 // 719), (x + y) % 256], -1).astype(np.uint8)
    for size in ((608, 608), (320, 256), (1500, 1000)):
        ours = resize_linear(image, *size)
        assert np.array_equal(ours, cv2.resize(image, size, interpolation=cv2.INTER_LINEAR))


def test_pillow_bilinear_is_not_this_filter() -> None:
    """Why the resize is our own: Pillow's downscaling filter gives other pixels."""
    from PIL import Image

    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    pillow = np.asarray(Image.fromarray(image).resize((416, 416), Image.BILINEAR))
    ours = resize_linear(image, 416, 416)
    assert np.abs(pillow.astype(int) - ours).mean() > 1.0


def test_to_input_is_nchw_rgb_over_255() -> None:
    image = np.zeros((10, 20, 3), np.uint8)
    image[..., 0] = 255
    image[..., 2] = 51
    tensor = to_input(image, 26, 13)
    assert tensor.shape == (1, 3, 13, 26) and tensor.dtype == np.float32
    assert np.allclose(tensor[0, 0], 1.0) and np.allclose(tensor[0, 1], 0.0)
    assert np.allclose(tensor[0, 2], 0.2)


def boxes(*rows: tuple[float, float, float, float]) -> np.ndarray:
    return np.array(rows, dtype=np.float64)


def test_iou_exactly_045_is_kept_and_just_above_is_dropped() -> None:
    # IoU = 9 / 20 = 0.45 exactly as a double: integer areas, one correctly rounded division
    b = boxes((0, 0, 20, 1), (0, 0, 9, 1))
    assert nms(b, np.array([0.9, 0.8]), 0.45) == [0, 1]
    b = boxes((0, 0, 20, 1), (0, 0, 9.001, 1))
    assert nms(b, np.array([0.9, 0.8]), 0.45) == [0]


def test_ties_keep_the_earlier_box() -> None:
    b = boxes((0, 0, 1, 1), (0, 0, 1, 1), (5, 5, 6, 6), (5, 5, 6, 6))
    assert nms(b, np.array([0.5, 0.5, 0.5, 0.5]), 0.45) == [0, 2]
    assert nms(b, np.array([0.5, 0.6, 0.5, 0.5]), 0.45) == [1, 2]


def test_greedy_suppression_in_a_chain_and_a_crowd() -> None:
    # A overlaps B, B overlaps C, A does not overlap C: greedy keeps A and C
    b = boxes((0, 0, 10, 10), (3, 0, 13, 10), (8, 0, 18, 10))
    assert nms(b, np.array([0.9, 0.8, 0.7]), 0.45) == [0, 2]
    # 200 boxes all around the same spot: one survives, the best
    rng = np.random.default_rng(5)
    jitter = rng.uniform(-0.2, 0.2, (200, 4))
    crowd = boxes(*[(10 + a, 10 + b, 20 + c, 20 + d) for a, b, c, d in jitter])
    confs = rng.uniform(0.1, 0.9, 200)
    assert nms(crowd, confs, 0.45) == [int(np.argmax(confs))]
    # zero-area boxes neither divide by zero nor suppress anything
    flat = boxes((1, 1, 1, 1), (1, 1, 1, 1))
    assert nms(flat, np.array([0.5, 0.4]), 0.45) == [0, 1]


def test_confidence_exactly_at_threshold_is_dropped() -> None:
    b = np.array([[[[0.1, 0.1, 0.2, 0.2]], [[0.5, 0.5, 0.6, 0.6]], [[0.7, 0.7, 0.8, 0.8]]]])
    for c in (np.array([[[0.08], [0.0800001], [0.5]]]),
              np.array([[[0.08], [0.0800001], [0.5]]], np.float32)):
        p, dets = postprocess(b, c, 100, 100)
        assert [round(d[0], 6) for d in dets] == [0.5, 0.08]
        assert p == pytest.approx(0.5800001, abs=1e-6)


def test_boxes_in_frame_pixels_height_scaled_by_height() -> None:
    b = np.array([[[[0.25, 0.5, 0.75, 1.0]], [[-0.1, 0.0, 0.1, 0.2]]]], np.float32)
    c = np.array([[[0.6], [0.3]]], np.float32)
    p, dets = postprocess(b, c, 1280, 720, bending_factor=0.5)
    assert [d[0] for d in dets] == pytest.approx([0.3, 0.15])
    assert dets[0][1] == pytest.approx((640.0, 540.0, 640.0, 360.0))
    assert dets[1][1] == pytest.approx((0.0, 72.0, 256.0, 144.0))  # not clipped, as Obico
    assert p == pytest.approx(0.45)
    assert postprocess(b, np.zeros((1, 2, 1)), 1280, 720) == (0.0, [])


def test_mismatched_outputs_are_an_error() -> None:
    with pytest.raises(ValueError, match="3 boxes but 2 confidences"):
        postprocess(np.zeros((1, 3, 1, 4)), np.zeros((1, 2, 1)), 10, 10)
