"""Small ONNX detectors with Obico's tensors, built with the ``onnx`` helper API (tests only).

The real weights cannot be in the repository, and cannot be fetched here; these
graphs have Obico's input and output names and shapes and answer a known
function of the picture, so the loading, checking and inference code under
test is the real one:

- :func:`red_graph`: the confidence of each of the 13 x 13 cells is its mean
  *redness* (R - (G + B) / 2, in 0..1) above ``floor``, times ``gain``, clipped
  to 1, times a factor per anchor; the boxes are fixed anchor boxes around the
  cell centres. A grey or ordinary picture scores nothing; a red patch scores.
- :func:`custom_graph`: any input/output signature, for the refused models.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["ANCHOR_SCALES", "ANCHOR_SIZES", "GRID", "anchor_boxes", "custom_graph",
           "red_confidences", "red_graph"]

GRID = 13
ANCHOR_SIZES = (2.0, 2.4, 3.0, 3.6, 4.4)  # box side in cells, one per anchor
ANCHOR_SCALES = (0.95, 0.8, 0.6, 0.4, 0.25)  # confidence factor per anchor
OPSET = 13


def anchor_boxes(grid: int = GRID) -> np.ndarray:
    """(5 * grid * grid, 4) normalised x1, y1, x2, y2: anchor-major, then row, then column."""
    out = np.empty((len(ANCHOR_SIZES), grid, grid, 4), np.float32)
    centres = (np.arange(grid, dtype=np.float32) + 0.5) / grid
    for a, side in enumerate(ANCHOR_SIZES):
        half = side / grid / 2
        out[a, :, :, 0] = centres[None, :] - half
        out[a, :, :, 1] = centres[:, None] - half
        out[a, :, :, 2] = centres[None, :] + half
        out[a, :, :, 3] = centres[:, None] + half
    return out.reshape(-1, 4)


def red_confidences(chw: np.ndarray, floor: float = 0.6, gain: float = 4.0,
                    grid: int = GRID) -> np.ndarray:
    """What :func:`red_graph` computes, in numpy: (5 * grid * grid,) confidences."""
    r, g, b = chw.astype(np.float64)
    redness = r - (g + b) / 2
    h, w = redness.shape
    cells = redness.reshape(grid, h // grid, grid, w // grid).mean(axis=(1, 3))
    base = np.minimum(np.maximum(cells - floor, 0.0) * gain, 1.0)
    return np.concatenate([base.ravel() * s for s in ANCHOR_SCALES])


def red_graph(path: Path, size: tuple[int, int] = (416, 416), floor: float = 0.6,
              gain: float = 4.0) -> Path:
    """A red-sensitive detector, input ``[1, 3, H, W]`` (H, W multiples of 13)."""
    width, height = size
    if width % GRID or height % GRID:
        raise ValueError("the input size must be a multiple of 13")
    n = len(ANCHOR_SIZES) * GRID * GRID
    inits = [
        numpy_helper.from_array(np.array([[[[1.0]], [[-0.5]], [[-0.5]]]], np.float32), "mix"),
        numpy_helper.from_array(np.array([floor], np.float32), "floor"),
        numpy_helper.from_array(np.array([gain], np.float32), "gain"),
        numpy_helper.from_array(np.array([0.0], np.float32), "zero"),
        numpy_helper.from_array(np.array([1.0], np.float32), "one"),
        numpy_helper.from_array(np.array(ANCHOR_SCALES, np.float32).reshape(1, -1, 1, 1),
                                "scales"),
        numpy_helper.from_array(np.array([1, n, 1], np.int64), "conf_shape"),
        numpy_helper.from_array(anchor_boxes().reshape(1, n, 1, 4), "anchors"),
    ]
    kh, kw = height // GRID, width // GRID
    nodes = [
        helper.make_node("Conv", ["input", "mix"], ["redness"]),
        helper.make_node("AveragePool", ["redness"], ["cells"], kernel_shape=[kh, kw],
                         strides=[kh, kw]),
        helper.make_node("Sub", ["cells", "floor"], ["above"]),
        helper.make_node("Mul", ["above", "gain"], ["scaled"]),
        helper.make_node("Clip", ["scaled", "zero", "one"], ["base"]),
        helper.make_node("Mul", ["base", "scales"], ["per_anchor"]),
        helper.make_node("Reshape", ["per_anchor", "conf_shape"], ["confs"]),
        helper.make_node("Identity", ["anchors"], ["boxes"]),
    ]
    graph = helper.make_graph(
        nodes, "red_detector",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, height, width])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, n, 1, 4]),
         helper.make_tensor_value_info("confs", TensorProto.FLOAT, [1, n, 1])],
        inits)
    return _save(graph, path)


Dims = Sequence[int | str]


def custom_graph(path: Path, inputs: Sequence[tuple[str, int, Dims]],
                 outputs: Sequence[tuple[str, int, Dims]]) -> Path:
    """A graph with exactly these (name, TensorProto type, dims) inputs and outputs.

    Each output is a constant of its shape (dynamic dims as 1), so onnxruntime
    loads it; what matters is the signature the checks see.
    """
    inits, nodes = [], []
    for name, elem, dims in outputs:
        shape = [d if isinstance(d, int) else 1 for d in dims]
        dtype = helper.tensor_dtype_to_np_dtype(elem)
        inits.append(numpy_helper.from_array(np.zeros(shape, dtype), f"{name}_value"))
        nodes.append(helper.make_node("Identity", [f"{name}_value"], [name]))
    graph = helper.make_graph(
        nodes, "custom",
        [helper.make_tensor_value_info(n, e, list(d)) for n, e, d in inputs],
        [helper.make_tensor_value_info(n, e, list(d)) for n, e, d in outputs],
        inits)
    return _save(graph, path)


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="failwatch-tests")
    model.ir_version = 8  # loadable by older onnxruntime releases too
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
