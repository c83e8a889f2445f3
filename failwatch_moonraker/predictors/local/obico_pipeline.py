"""Obico's ONNX pre- and post-processing, as numpy arithmetic (runs in the ONNX worker).

Obico's ML server stretches the frame to the model's input with OpenCV's
``INTER_LINEAR`` on 8-bit pixels, runs the detector, keeps confidences > 0.08,
drops boxes overlapping a better one by IoU > 0.45 and sums what is left. The
same picture must give the same detections here, without OpenCV on the host:
the resize below is OpenCV's fixed-point bilinear filter (half-pixel centres,
11-bit weights, the same rounding), not Pillow's, whose downscaling widens the
kernel and moves the scores.

Imported only by the worker process: the daemon never loads numpy for this.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: OpenCV's INTER_RESIZE_COEF_BITS: bilinear weights are integers out of 2048.
_COEF_SCALE = 2048

Detection = tuple[float, tuple[float, float, float, float]]


def _taps(src: int, dst: int, clamp: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source index and the two fixed-point weights of every output position.

    Columns before the first or past the last pixel centre take the edge pixel
    unblended (``clamp``); rows keep their weights and blend the edge row with
    itself, which differs only in rounding - OpenCV does both, so this does too.
    """
    scale = 1.0 / (dst / src)  # double, as OpenCV computes it
    f = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    f = (f - s.astype(np.float32)).astype(np.float32)
    if clamp:
        low = s < 0
        f[low] = 0.0
        s[low] = 0
        high = s >= src - 1
        f[high] = 0.0
        s[high] = src - 1
    w1 = np.rint(f * np.float32(_COEF_SCALE)).astype(np.int32)
    w0 = np.rint((np.float32(1.0) - f) * np.float32(_COEF_SCALE)).astype(np.int32)
    return s, w0, w1


def resize_linear(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)`` for uint8 HxWxC.

    Horizontal pass into int32 rows scaled by 2048, then the vertical blend
    with OpenCV's SIMD rounding: each row is shifted right by 4, multiplied by
    its weight keeping the high 16 bits, and the sum rounded by (s + 2) >> 2.
    """
    if image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError("resize_linear wants an HxWxC uint8 array")
    src_h, src_w = image.shape[:2]
    xs, xw0, xw1 = _taps(src_w, width, clamp=True)
    ys, yw0, yw1 = _taps(src_h, height, clamp=False)
    xs1 = np.minimum(xs + 1, src_w - 1)
    ys1 = np.clip(ys + 1, 0, src_h - 1)
    ys = np.clip(ys, 0, src_h - 1)
    rows = np.unique(np.concatenate([ys, ys1]))  # only the source rows the output uses
    picked = image[rows].astype(np.int32)
    horiz = (picked[:, xs, :] * xw0[None, :, None]
             + picked[:, xs1, :] * xw1[None, :, None])  # (rows, width, C), x2048
    where = np.searchsorted(rows, ys), np.searchsorted(rows, ys1)
    top = horiz[where[0]] >> 4
    bottom = horiz[where[1]] >> 4
    out = ((top * yw0[:, None, None]) >> 16) + ((bottom * yw1[:, None, None]) >> 16)
    out = (out + 2) >> 2
    return np.clip(out, 0, 255).astype(np.uint8)


def to_input(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """The model's input: stretched to width x height, CHW, float32 in 0..1, batch of one."""
    resized = resize_linear(rgb, width, height)
    chw = np.ascontiguousarray(resized.transpose(2, 0, 1), dtype=np.float32)
    chw *= np.float32(1.0 / 255.0)
    return chw[None]


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one (x1, y1, x2, y2) box with each of ``others``; no +1, as Obico computes it."""
    ix1 = np.maximum(box[0], others[:, 0])
    iy1 = np.maximum(box[1], others[:, 1])
    ix2 = np.minimum(box[2], others[:, 2])
    iy2 = np.minimum(box[3], others[:, 3])
    inter = np.maximum(ix2 - ix1, 0.0) * np.maximum(iy2 - iy1, 0.0)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def nms(boxes: np.ndarray, confs: np.ndarray, threshold: float) -> list[int]:
    """Greedy NMS: indices kept, most confident first; IoU > threshold is dropped, = kept.

    Ties in confidence keep the earlier box first (a stable sort), as a
    descending argsort of the anchor order does.
    """
    order = np.argsort(-confs, kind="stable")
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        if not rest.size:
            break
        order = rest[_iou(boxes[best], boxes[rest]) <= threshold]
    return keep


def postprocess(
    boxes: np.ndarray,
    confs: np.ndarray,
    frame_width: int,
    frame_height: int,
    confidence_threshold: float = 0.08,
    nms_threshold: float = 0.45,
    bending_factor: float = 1.0,
) -> tuple[float, list[Detection]]:
    """p and the detections of one frame from the model's ``[1, N, 1, 4]`` and ``[1, N, 1]``.

    Boxes are normalised x1, y1, x2, y2; a detection is
    ``(confidence, (xc, yc, w, h))`` in frame pixels, height scaled by the
    frame's height (Obico scales it by the width, which only moves drawn boxes).
    ``p`` sums the confidences times ``bending_factor``, which also scales the
    confidences reported, as Obico's server does before summing.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    c = np.asarray(confs, dtype=np.float64).reshape(-1)
    if b.shape[0] != c.shape[0]:
        raise ValueError(f"{b.shape[0]} boxes but {c.shape[0]} confidences")
    picked = np.flatnonzero(c > confidence_threshold)
    kept = picked[nms(b[picked], c[picked], nms_threshold)] if picked.size else picked
    w, h = float(frame_width), float(frame_height)
    detections: list[Detection] = []
    for i in kept:
        x1, y1, x2, y2 = b[i]
        conf = float(c[i]) * bending_factor
        detections.append((conf, (w * (x1 + x2) / 2.0, h * (y1 + y2) / 2.0,
                                  w * (x2 - x1), h * (y2 - y1))))
    p = float(sum(d[0] for d in detections))
    return p, detections


def detections_json(detections: Sequence[Detection]) -> list[list[object]]:
    """``[[confidence, [xc, yc, w, h]], ...]``: what the worker sends back."""
    return [[conf, list(box)] for conf, box in detections]
