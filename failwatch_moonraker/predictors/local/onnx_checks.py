"""What an ONNX file must look like to run as an Obico-style detector; plain data, no onnxruntime.

The worker hands in what onnxruntime reports about the file's tensors; a file
that does not fit is refused at load with a message naming the file and what
was found, instead of failing on every frame later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ModelRefused", "Tensor", "check_tensors", "describe"]

NEEDED = ("a float32 input [1, 3, H, W] (fixed H, W), outputs boxes [1, N, 1, 4] and "
          "confidences [1, N, 1]")


class ModelRefused(Exception):
    """The file is not a detector with Obico's tensors."""


@dataclass(frozen=True)
class Tensor:
    name: str
    type: str  # onnxruntime's spelling: "tensor(float)"
    shape: tuple[int | str | None, ...]  # a str or None is a dynamic dimension


def describe(tensors: Sequence[Tensor]) -> str:
    if not tensors:
        return "none"
    parts = []
    for t in tensors:
        dims = ", ".join("?" if d is None else str(d) for d in t.shape)
        kind = t.type[len("tensor("):-1] if t.type.startswith("tensor(") else t.type
        parts.append(f"{t.name!r} {kind} [{dims}]")
    return ", ".join(parts)


def _fixed(dim: int | str | None) -> bool:
    return isinstance(dim, int) and dim > 0


def check_tensors(path: str, inputs: Sequence[Tensor], outputs: Sequence[Tensor]
                  ) -> tuple[int, int, int]:
    """The model's input width, height and box count N; :class:`ModelRefused` otherwise."""

    def refuse(what: str) -> ModelRefused:
        return ModelRefused(f"{path}: {what}; needs {NEEDED}")

    found = f"inputs {describe(inputs)}; outputs {describe(outputs)}"
    if len(inputs) != 1:
        raise refuse(f"{len(inputs)} inputs, not one ({found})")
    (inp,) = inputs
    if inp.type != "tensor(float)":
        raise refuse(f"the input is {describe(inputs)}, not float32")
    if len(inp.shape) != 4:
        raise refuse(f"the input {describe(inputs)} has rank {len(inp.shape)}, not 4 (NCHW)")
    n, c, h, w = inp.shape
    if not (_fixed(h) and _fixed(w)):
        raise refuse(f"the input {describe(inputs)} has a dynamic height or width; "
                     "only a fixed size can be stretched to")
    if c != 3 or (isinstance(n, int) and n != 1):  # a dynamic batch is run with 1
        raise refuse(f"the input {describe(inputs)} is not [1, 3, H, W]")
    if len(outputs) != 2:
        raise refuse(f"{len(outputs)} outputs, not two ({found})")
    boxes, confs = outputs
    if boxes.type != "tensor(float)" or confs.type != "tensor(float)":
        raise refuse(f"the outputs are {describe(outputs)}, not float32")
    if len(boxes.shape) != 4 or boxes.shape[2] != 1 or boxes.shape[3] != 4:
        raise refuse(f"output 0 {describe([boxes])} is not boxes [1, N, 1, 4]")
    if len(confs.shape) != 3 or confs.shape[2] != 1:
        raise refuse(f"output 1 {describe([confs])} is not confidences [1, N, 1] (one class)")
    nb, nc = boxes.shape[1], confs.shape[1]
    if _fixed(nb) and _fixed(nc) and nb != nc:
        raise refuse(f"output 0 has {nb} boxes but output 1 {nc} confidences")
    count = nb if _fixed(nb) else nc if _fixed(nc) else 0
    assert isinstance(w, int) and isinstance(h, int) and isinstance(count, int)
    return w, h, count
