"""The onnx backend end to end: the real worker process, onnxruntime, test graphs on disk.

Parity: the same pictures go through an independent reference written here
with OpenCV (decode, INTER_LINEAR, /255, the same graph, a plain-Python
threshold and NMS): the detections must be the same, in the same order.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from failwatch_moonraker.predictors import BadRequest, BadResponse, PredictorError
from failwatch_moonraker.predictors.local.engine import EngineMissing
from failwatch_moonraker.predictors.local.onnx_backend import OnnxPredictor
from sim.camera import make_snapshot_jpeg

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
cv2 = pytest.importorskip("cv2")

from sim.onnx_graphs import custom_graph, red_graph  # noqa: E402  (needs onnx)

F = onnx.TensorProto.FLOAT


def picture(width: int, height: int, seed: int, blobs: int = 6) -> bytes:
    """A noisy picture with red-ish blobs of several strengths, as a JPEG."""
    rng = np.random.default_rng(seed)
    base = rng.normal(110, 25, (height, width, 3)).clip(0, 255).astype(np.uint8)
    img = Image.fromarray(base)
    draw = ImageDraw.Draw(img)
    for _ in range(blobs):
        x, y = rng.integers(0, width), rng.integers(0, height)
        r = int(rng.integers(max(width, height) // 20, max(width, height) // 5))
        red = int(rng.integers(170, 256))
        other = int(rng.integers(0, 60))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(red, other, other // 2))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=88)
    return out.getvalue()


def reference(model: Path, jpeg: bytes, conf_thr: float = 0.08, nms_thr: float = 0.45,
              bending: float = 1.0) -> tuple[float, list[tuple[float, list[float]]]]:
    """Obico's ML server's pipeline, written independently with OpenCV and plain Python."""
    bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    resized = cv2.resize(rgb, (shape[3], shape[2]), interpolation=cv2.INTER_LINEAR)
    x = np.transpose(resized, (2, 0, 1)).astype(np.float32)[None] / 255.0
    boxes, confs = session.run(None, {session.get_inputs()[0].name: x})
    cands = [(float(c), [float(v) for v in b])
             for b, c in zip(boxes[0, :, 0, :], confs[0, :, 0], strict=True) if c > conf_thr]
    cands.sort(key=lambda t: -t[0])
    kept: list[tuple[float, list[float]]] = []
    while cands:
        best = cands.pop(0)
        kept.append(best)

        def iou(a: list[float], b: list[float]) -> float:
            iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            inter = iw * ih
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            return inter / union if union > 0 else 0.0

        cands = [c for c in cands if iou(best[1], c[1]) <= nms_thr]
    dets = [(c * bending, [w * (b[0] + b[2]) / 2, h * (b[1] + b[3]) / 2, w * (b[2] - b[0]),
                           h * (b[3] - b[1])]) for c, b in kept]
    return sum(d[0] for d in dets), dets


@pytest.fixture(scope="module")
def red_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return red_graph(tmp_path_factory.mktemp("models") / "red.onnx")


@pytest.mark.parametrize("width, height, seed", [
    (1280, 720, 1), (640, 480, 2), (1920, 1080, 3), (800, 600, 4), (320, 240, 5)])
async def test_same_detections_as_the_opencv_reference(red_model: Path, width: int,
                                                       height: int, seed: int) -> None:
    jpeg = picture(width, height, seed)
    predictor = OnnxPredictor(str(red_model), bending_factor=1.3)
    try:
        got = await predictor.predict(jpeg, "print-1")
    finally:
        await predictor.close()
    p, want = reference(red_model, jpeg, bending=1.3)
    assert len(want) >= 3  # the picture does score, and NMS had work to do
    assert len(got.detections) == len(want)
    for (conf, box), (rconf, rbox) in zip(got.detections, want, strict=True):
        assert conf == pytest.approx(rconf, abs=1e-4)
        assert np.allclose(box, rbox, atol=0.5)
    assert got.p == pytest.approx(p, abs=1e-4)
    assert got.raw["width"] == width and got.raw["height"] == height


async def test_other_input_size_and_thresholds(tmp_path: Path) -> None:
    model = red_graph(tmp_path / "wide.onnx", size=(624, 351))
    jpeg = picture(1280, 720, 9)
    predictor = OnnxPredictor(str(model), confidence_threshold=0.3, nms_threshold=0.3,
                              threads=1)
    try:
        got = await predictor.predict(jpeg, "p")
        facts = predictor.engine_facts()
    finally:
        await predictor.close()
    p, want = reference(model, jpeg, conf_thr=0.3, nms_thr=0.3)
    assert [round(d[0], 4) for d in got.detections] == [round(c, 4) for c, _ in want]
    assert got.p == pytest.approx(p, abs=1e-4)
    assert facts["input"] == "624x351" and facts["threads"] == 1
    assert facts["package"] == "onnxruntime" and facts["version"] == ort.__version__


async def test_healthy_picture_scores_zero_red_patch_scores(red_model: Path,
                                                            caplog: pytest.LogCaptureFixture
                                                            ) -> None:
    caplog.set_level(logging.INFO)
    healthy = make_snapshot_jpeg()
    img = Image.open(io.BytesIO(healthy)).convert("RGB")
    ImageDraw.Draw(img).rectangle((520, 300, 760, 480), fill=(230, 20, 20))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    predictor = OnnxPredictor(str(red_model))
    try:
        assert (await predictor.predict(healthy, "p")).p == 0.0
        red = await predictor.predict(out.getvalue(), "p")
        with pytest.raises(BadRequest, match="not a picture Pillow can decode"):
            await predictor.predict(b"<html>camera offline</html>", "p")
        again = await predictor.predict(out.getvalue(), "p")  # still in step after the error
        facts = predictor.engine_facts()
    finally:
        await predictor.close()
    assert red.p > 2.0 and again.p == red.p
    assert all(500 < d[1][0] < 800 and 280 < d[1][1] < 500 for d in red.detections)
    assert facts["starts"] == 1 and facts["nice"] == 10
    assert facts["obico_model"] is False
    told = [r.message for r in caplog.records if "is not Obico's published model" in r.message]
    assert len(told) == 1 and str(red_model) in told[0]
    assert "p may not match them" in told[0]


def _signature(tmp_path: Path, name: str, inputs: list, outputs: list) -> Path:
    return custom_graph(tmp_path / name, inputs, outputs)


@pytest.mark.parametrize("name, inputs, outputs, found", [
    ("rank3.onnx", [("input", F, [3, 416, 416])],
     [("boxes", F, [1, 845, 1, 4]), ("confs", F, [1, 845, 1])],
     "the input 'input' float [3, 416, 416] has rank 3, not 4 (NCHW)"),
    ("dynamic.onnx", [("input", F, [1, 3, "height", "width"])],
     [("boxes", F, [1, 845, 1, 4]), ("confs", F, [1, 845, 1])],
     "the input 'input' float [1, 3, height, width] has a dynamic height or width"),
    ("three.onnx", [("input", F, [1, 3, 416, 416])],
     [("boxes", F, [1, 845, 1, 4]), ("confs", F, [1, 845, 1]), ("extra", F, [1, 845])],
     "3 outputs, not two"),
])
async def test_refused_models_say_file_and_what_was_found(tmp_path: Path, red_model: Path,
                                                          name: str, inputs: list,
                                                          outputs: list, found: str) -> None:
    model = _signature(tmp_path, name, inputs, outputs)
    predictor = OnnxPredictor(str(model))
    try:
        with pytest.raises(PredictorError) as first:
            await predictor.predict(make_snapshot_jpeg(), "p")
        message = str(first.value)
        assert "exited with code 3 (the model cannot be loaded)" in message
        assert f"model refused: {model}: {found}" in message
        with pytest.raises(BadResponse, match="tried again when it changes"):
            await predictor.predict(make_snapshot_jpeg(), "p")
        assert predictor.engine.starts == 1  # a refused file is not reloaded every frame
        assert "refused" in predictor.engine_facts()
        os.replace(_copy(red_model, tmp_path / "good.onnx"), model)
        predictor.engine._next_start = 0.0  # no back-off wait in a test
        assert (await predictor.predict(make_snapshot_jpeg(), "p")).p == 0.0
    finally:
        await predictor.close()


def _copy(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes())
    return dst


async def test_not_an_onnx_file_and_a_missing_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07" + os.urandom(4000))
    predictor = OnnxPredictor(str(junk))
    try:
        with pytest.raises(PredictorError, match=f"cannot load {junk}"):
            await predictor.predict(make_snapshot_jpeg(), "p")
    finally:
        await predictor.close()
    missing = OnnxPredictor(str(tmp_path / "none.onnx"))
    try:
        with pytest.raises(EngineMissing, match=r"does not exist; fetch Obico's with "
                                                r"'failwatch-moonraker model fetch obico'"):
            await missing.predict(make_snapshot_jpeg(), "p")
        assert missing.engine.starts == 0
    finally:
        await missing.close()


async def test_worker_killed_between_frames_is_restarted(red_model: Path) -> None:
    import signal

    predictor = OnnxPredictor(str(red_model))
    try:
        await predictor.predict(make_snapshot_jpeg(), "p")
        first = predictor.engine.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        for _ in range(100):  # the supervisor notices the death on its own
            if not predictor.engine.running:
                break
            await asyncio.sleep(0.05)
        pred = await predictor.predict(make_snapshot_jpeg(), "p")  # restarted, no back-off yet
        assert pred.p == 0.0
        assert predictor.engine.starts == 2 and predictor.engine.pid != first
        assert "SIGKILL" in (predictor.engine_facts()["last_error"] or "")
    finally:
        await predictor.close()


async def test_missing_model_is_said_at_daemon_start(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    from failwatch_moonraker.predictors import start_predictor

    caplog.set_level(logging.WARNING)
    predictor = OnnxPredictor(str(tmp_path / "none.onnx"))
    try:
        await start_predictor(predictor)  # what the daemon runs when it starts
        assert not predictor.engine.running and predictor.engine.starts == 0
    finally:
        await predictor.close()
    assert any("none.onnx does not exist" in r.message and "model fetch obico" in r.message
               for r in caplog.records)


def test_the_daemon_side_imports_no_runtime() -> None:
    """onnxruntime, numpy and Pillow live in the worker: the daemon stays small."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from failwatch_moonraker.daemon import Daemon\n"
            "from failwatch_moonraker.config import parse_config\n"
            "from failwatch_moonraker.predictors import create_predictor\n"
            "p = create_predictor(parse_config('[predictor]\\nbackend: onnx\\n').predictor, None)\n"
            "print(type(p).__name__, sorted(m for m in ('numpy', 'onnxruntime', 'PIL', 'onnx')"
            " if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "OnnxPredictor []"
