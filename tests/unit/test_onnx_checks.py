"""The tensors an ONNX detector must have, and the messages for a file that does not fit."""

from __future__ import annotations

import pytest

from failwatch_moonraker.predictors.local.onnx_checks import ModelRefused, Tensor, check_tensors

F = "tensor(float)"
OBICO_IN = [Tensor("input", F, (1, 3, 416, 416))]
OBICO_OUT = [Tensor("boxes", F, (1, 845, 1, 4)), Tensor("confs", F, (1, 845, 1))]


def test_obico_tensors_pass() -> None:
    assert check_tensors("m.onnx", OBICO_IN, OBICO_OUT) == (416, 416, 845)
    other = [Tensor("images", F, ("batch", 3, 320, 608))]  # any names, a dynamic batch
    outs = [Tensor("a", F, ("batch", "n", 1, 4)), Tensor("b", F, ("batch", "n", 1))]
    assert check_tensors("m.onnx", other, outs) == (608, 320, 0)


@pytest.mark.parametrize("inputs, outputs, found", [
    ([Tensor("input", F, (3, 416, 416))], OBICO_OUT,
     "the input 'input' float [3, 416, 416] has rank 3, not 4 (NCHW)"),
    ([Tensor("input", F, (1, 3, "h", "w"))], OBICO_OUT,
     "the input 'input' float [1, 3, h, w] has a dynamic height or width"),
    ([Tensor("input", F, (1, 3, None, 416))], OBICO_OUT,
     "the input 'input' float [1, 3, ?, 416] has a dynamic height or width"),
    ([Tensor("input", "tensor(uint8)", (1, 3, 416, 416))], OBICO_OUT,
     "the input is 'input' uint8 [1, 3, 416, 416], not float32"),
    ([Tensor("input", F, (1, 416, 416, 3))], OBICO_OUT,
     "the input 'input' float [1, 416, 416, 3] is not [1, 3, H, W]"),
    (OBICO_IN + [Tensor("mask", F, (1, 1))], OBICO_OUT, "2 inputs, not one"),
    (OBICO_IN, OBICO_OUT + [Tensor("extra", F, (1, 845))],
     "3 outputs, not two (inputs 'input' float [1, 3, 416, 416]; outputs 'boxes' float "
     "[1, 845, 1, 4], 'confs' float [1, 845, 1], 'extra' float [1, 845])"),
    (OBICO_IN, OBICO_OUT[::-1], "output 0 'confs' float [1, 845, 1] is not boxes [1, N, 1, 4]"),
    (OBICO_IN, [OBICO_OUT[0], Tensor("confs", F, (1, 845, 2))],
     "output 1 'confs' float [1, 845, 2] is not confidences [1, N, 1] (one class)"),
    (OBICO_IN, [OBICO_OUT[0], Tensor("confs", F, (1, 507, 1))],
     "output 0 has 845 boxes but output 1 507 confidences"),
])
def test_refused_with_what_was_found(inputs: list[Tensor], outputs: list[Tensor],
                                     found: str) -> None:
    with pytest.raises(ModelRefused) as err:
        check_tensors("/models/x.onnx", inputs, outputs)
    message = str(err.value)
    assert message.startswith(f"/models/x.onnx: {found}")
    assert message.endswith("needs a float32 input [1, 3, H, W] (fixed H, W), outputs boxes "
                            "[1, N, 1, 4] and confidences [1, N, 1]")
