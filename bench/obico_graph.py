"""An Obico-size ONNX detector for the benchmark: YOLOv2 416x416, random weights.

Obico's weights cannot be fetched here (and are never committed), so the bench
builds, outside the repository and cached, a graph with the layer structure of
Obico's ``model.cfg`` (Darknet-19 with the passthrough layer, 5 anchors, one
class: ~50.6 M parameters, ~202 MB of float32) and Obico's tensors: input
``input`` [1, 3, 416, 416], outputs ``boxes`` [1, 845, 1, 4] and ``confs``
[1, 845, 1], region decoding inside the graph. It costs what Obico's model
costs; its answers mean nothing.

``python -m bench.obico_graph`` builds it and prints the path.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

VERSION = 1
CACHE = Path(os.environ.get("FAILWATCH_BENCH_CACHE", "~/.cache/failwatch-bench")).expanduser()
SIZE, GRID, ANCHORS = 416, 13, 5
# Obico's model.cfg anchors (in cells), as in YOLOv2's VOC configuration.
ANCHOR_WH = ((1.3221, 1.73145), (3.19275, 4.00944), (5.05587, 8.09892), (9.47112, 4.84053),
             (11.2364, 10.0071))

# Darknet-19 as in model.cfg: (filters, size) convolutions, "M" a 2x2 max-pool.
BACKBONE = [(32, 3), "M", (64, 3), "M", (128, 3), (64, 1), (128, 3), "M",
            (256, 3), (128, 1), (256, 3), "M",
            (512, 3), (256, 1), (512, 3), (256, 1), (512, 3), "ROUTE", "M",
            (1024, 3), (512, 1), (1024, 3), (512, 1), (1024, 3),
            (1024, 3), (1024, 3)]


def model_path() -> Path:
    return CACHE / f"obico-size-yolov2-416-v{VERSION}.onnx"


def build(path: Path | None = None, seed: int = 20240601) -> Path:
    """Build (or reuse) the graph; returns its path."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    path = path or model_path()
    if path.is_file() and path.stat().st_size > 150_000_000:
        return path
    rng = np.random.default_rng(seed)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    count = [0]

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    def conv(x: str, cin: int, cout: int, k: int, leaky: bool = True,
             bias: np.ndarray | None = None) -> str:
        i = count[0] = count[0] + 1
        std = np.sqrt(2.0 / (cin * k * k)) * 0.8
        w = const(f"conv{i}.w", (rng.standard_normal((cout, cin, k, k)) * std)
                  .astype(np.float32))
        b = const(f"conv{i}.b", bias if bias is not None else
                  (rng.standard_normal(cout) * 0.01).astype(np.float32))
        out = f"conv{i}"
        nodes.append(helper.make_node("Conv", [x, w, b], [out], kernel_shape=[k, k],
                                      pads=[k // 2] * 4))
        if not leaky:
            return out
        nodes.append(helper.make_node("LeakyRelu", [out], [f"{out}.act"], alpha=0.1))
        return f"{out}.act"

    x, channels, route, pools = "input", 3, "", 0
    for layer in BACKBONE:
        if layer == "M":
            pools += 1
            nodes.append(helper.make_node("MaxPool", [x], [f"pool{pools}"], kernel_shape=[2, 2],
                                          strides=[2, 2]))
            x = f"pool{pools}"
        elif layer == "ROUTE":
            route = x  # 26 x 26 x 512, for the passthrough
        else:
            filters, k = layer  # type: ignore[misc]
            x = conv(x, channels, filters, k)
            channels = filters
    # passthrough: 1x1 to 64, reorg (space-to-depth) to 13 x 13 x 256, concatenated
    p = conv(route, 512, 64, 1)
    nodes.append(helper.make_node("SpaceToDepth", [p], ["reorg"], blocksize=2))
    nodes.append(helper.make_node("Concat", ["reorg", x], ["cat"], axis=1))
    x = conv("cat", 256 + 1024, 1024, 3)
    per = 5 + 1  # x, y, w, h, objectness, one class
    bias = np.zeros(ANCHORS * per, np.float32)
    bias[4::per] = -4.0  # objectness mostly low: few boxes pass 0.08, as on a healthy print
    head = conv(x, 1024, ANCHORS * per, 1, leaky=False, bias=bias)
    _region(nodes, const, head, helper)
    graph = helper.make_graph(
        nodes, "obico_size_yolov2",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 845, 1, 4]),
         helper.make_tensor_value_info("confs", TensorProto.FLOAT, [1, 845, 1])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="failwatch-bench")
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    onnx.save(model, str(tmp))
    os.replace(tmp, path)
    return path


def _region(nodes: list, const, head: str, helper) -> None:  # type: ignore[no-untyped-def]
    """YOLOv2's region decoding, in the graph as in Obico's ONNX file."""
    n = GRID * GRID
    const("r.shape", np.array([1, ANCHORS, 6, GRID, GRID], np.int64))
    nodes.append(helper.make_node("Reshape", [head, "r.shape"], ["r"]))
    for name, start, end in (("xy", 0, 2), ("wh", 2, 4), ("obj", 4, 5)):
        const(f"{name}.s", np.array([start], np.int64))
        const(f"{name}.e", np.array([end], np.int64))
        const(f"{name}.a", np.array([2], np.int64))
        nodes.append(helper.make_node("Slice", ["r", f"{name}.s", f"{name}.e", f"{name}.a"],
                                      [f"{name}.raw"]))
    gy, gx = np.mgrid[0:GRID, 0:GRID].astype(np.float32)
    const("grid", np.stack([gx, gy])[None, None])  # [1, 1, 2, 13, 13]
    anchors = np.array(ANCHOR_WH, np.float32).reshape(1, ANCHORS, 2, 1, 1)
    const("anchors", anchors)
    const("inv_grid", np.array([1.0 / GRID], np.float32))
    const("half", np.array([0.5], np.float32))
    nodes += [
        helper.make_node("Sigmoid", ["xy.raw"], ["xy.sig"]),
        helper.make_node("Add", ["xy.sig", "grid"], ["xy.cell"]),
        helper.make_node("Mul", ["xy.cell", "inv_grid"], ["centre"]),
        helper.make_node("Exp", ["wh.raw"], ["wh.exp"]),
        helper.make_node("Mul", ["wh.exp", "anchors"], ["wh.cells"]),
        helper.make_node("Mul", ["wh.cells", "inv_grid"], ["size"]),
        helper.make_node("Mul", ["size", "half"], ["halfsize"]),
        helper.make_node("Sub", ["centre", "halfsize"], ["p1"]),
        helper.make_node("Add", ["centre", "halfsize"], ["p2"]),
        helper.make_node("Concat", ["p1", "p2"], ["corners"], axis=2),  # [1, 5, 4, 13, 13]
        helper.make_node("Transpose", ["corners"], ["corners.t"], perm=[0, 1, 3, 4, 2]),
        helper.make_node("Sigmoid", ["obj.raw"], ["obj"]),  # one class: softmax is 1
    ]
    const("boxes.shape", np.array([1, ANCHORS * n, 1, 4], np.int64))
    const("confs.shape", np.array([1, ANCHORS * n, 1], np.int64))
    nodes.append(helper.make_node("Reshape", ["corners.t", "boxes.shape"], ["boxes"]))
    nodes.append(helper.make_node("Reshape", ["obj", "confs.shape"], ["confs"]))


def parameters(path: Path) -> int:
    import onnx

    model = onnx.load(str(path))
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer if t.data_type == 1)


if __name__ == "__main__":
    built = build(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    print(built, f"{built.stat().st_size / 1e6:.1f} MB")
