"""``detect`` and ``check`` with backend onnx, as a user runs them: real processes."""

from __future__ import annotations

import asyncio
import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from sim.camera import make_snapshot_jpeg
from sim.cli_run import CLI, run_cli
from sim.daemon_config import config_for
from sim.harness import SimPrinter

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from sim.onnx_graphs import custom_graph, red_graph  # noqa: E402  (needs onnx)


def pictures(tmp_path: Path) -> tuple[Path, Path]:
    healthy, red = tmp_path / "healthy.jpg", tmp_path / "red.jpg"
    healthy.write_bytes(make_snapshot_jpeg())
    img = Image.open(io.BytesIO(make_snapshot_jpeg())).convert("RGB")
    ImageDraw.Draw(img).rectangle((520, 280, 780, 500), fill=(225, 25, 20))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    red.write_bytes(out.getvalue())
    return healthy, red


async def test_detect_with_the_onnx_backend(tmp_path: Path) -> None:
    healthy, red = pictures(tmp_path)
    model = red_graph(tmp_path / "red.onnx")
    code, out, err = await run_cli("detect", str(healthy), str(red), "--json",
                                   "--set", "backend=onnx", "--set", f"model={model}",
                                   "--set", "bending_factor=0.5", timeout=120)
    assert code == 0, err
    first, second = (json.loads(line) for line in out.splitlines())
    assert first["p"] == 0.0 and first["detections"] == []
    assert second["p"] > 1.0 and len(second["detections"]) >= 3
    assert second["p"] == pytest.approx(sum(c for c, _ in second["detections"]), abs=1e-4)
    assert max(c for c, _ in second["detections"]) <= 0.5  # bending factor 0.5 applied
    code, out, err = await run_cli("detect", str(red), "--set", "backend=onnx",
                                   "--set", f"model={model}", timeout=120)
    assert code == 0, err
    assert f"{red}: p=" in out and "detection(s)" in out
    assert "engine: onnxruntime" in out and "ms/frame" in out


async def test_detect_refused_missing_and_no_runtime(tmp_path: Path) -> None:
    healthy, _ = pictures(tmp_path)
    bad = custom_graph(tmp_path / "bad.onnx", [("input", 1, [1, 3, "h", "w"])],
                       [("boxes", 1, [1, 845, 1, 4]), ("confs", 1, [1, 845, 1])])
    code, _, err = await run_cli("detect", str(healthy), "--set", "backend=onnx",
                                 "--set", f"model={bad}", timeout=120)
    assert code == 2
    assert "the onnx engine did not start" in err
    assert f"model refused: {bad}: the input 'input' float [1, 3, h, w] has a dynamic" in err
    code, _, err = await run_cli("detect", str(healthy), "--set", "backend=onnx",
                                 "--set", f"model={tmp_path / 'none.onnx'}")
    assert code == 2
    assert "does not exist; fetch Obico's with 'failwatch-moonraker model fetch obico'" in err
    # onnxruntime that cannot be imported (as on a host without the [onnx] extra)
    hide = tmp_path / "hide" / "onnxruntime"
    hide.mkdir(parents=True)
    (hide / "__init__.py").write_text("raise ImportError('not installed (test)', "
                                      "name='onnxruntime')\n")
    model = red_graph(tmp_path / "red.onnx")
    proc = await asyncio.create_subprocess_exec(
        *CLI, "detect", str(healthy), "--set", "backend=onnx", "--set", f"model={model}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": f"{hide.parent}{os.pathsep}{os.getcwd()}"})
    _, raw = await asyncio.wait_for(proc.communicate(), 60)
    text = raw.decode()
    assert proc.returncode == 2, text
    assert "Traceback" not in text
    assert "onnxruntime is not installed" in text
    assert "pip install 'failwatch-moonraker[onnx]'" in text and "--local obico" in text


@pytest.mark.usefixtures("require_moonraker")
async def test_check_reports_the_onnx_engine(tmp_path: Path) -> None:
    model = red_graph(tmp_path / "red.onnx")
    async with SimPrinter() as printer:
        cfg = config_for(printer, tmp_path / "failwatch.cfg",
                         predictor={"backend": "onnx", "model": str(model), "timeout": 30,
                                    "url": ""})
        code, out, _ = await run_cli("check", "--config", str(cfg), timeout=120)
    assert code == 0, out
    assert "[ OK ] predictor: the local onnx engine scored the snapshot p=0.000" in out
    assert "[ OK ] engine: onnxruntime" in out
    assert f"model {model}" in out and "nice 10" in out
