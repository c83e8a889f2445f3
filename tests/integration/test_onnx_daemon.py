"""backend onnx in the daemon, through the real Moonraker with the emulated Klippy.

The camera shows the simulator's printed part; mid-print a red patch appears
on it, which the red-sensitive test graph (Obico's tensors) scores. The frames
are scored by the real ONNX worker process with onnxruntime.
"""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from failwatch_moonraker.predictors.local.onnx_backend import OnnxPredictor
from sim.daemon_config import config_for, seed_established_printer
from sim.harness import SimPrinter
from sim.macros import install_macros
from sim.waits import running_daemon, wait_until

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from sim.onnx_graphs import red_graph  # noqa: E402  (needs onnx)

pytestmark = pytest.mark.usefixtures("require_moonraker")


def with_red_patch(jpeg: bytes) -> bytes:
    img = Image.open(io.BytesIO(jpeg)).convert("RGB")
    ImageDraw.Draw(img).rectangle((520, 280, 780, 500), fill=(225, 25, 20))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def pauses(printer: SimPrinter) -> list[str]:
    return [line for line in printer.klippy.gcode_lines if line.split()[:1] == ["PAUSE"]]


def onnx_config(printer: SimPrinter, tmp_path: Path, model: Path) -> Path:
    return config_for(printer, tmp_path / "failwatch.cfg",
                      predictor={"backend": "onnx", "model": str(model), "timeout": 30, "url": "",
                                 "threads": 1})


async def test_red_patch_mid_print_reaches_pause(tmp_path: Path) -> None:
    model = red_graph(tmp_path / "models" / "red.onnx")
    async with SimPrinter() as printer:
        install_macros(printer.klippy)
        cfg = onnx_config(printer, tmp_path, model)
        seed_established_printer(tmp_path)
        async with running_daemon(cfg) as daemon:
            predictor = daemon.predictor
            assert isinstance(predictor, OnnxPredictor)
            assert not predictor.engine.running  # not at boot: with the first frame
            await printer.start_print("benchy.gcode")
            await wait_until(lambda: daemon.session.stats.prediction_num >= 5, 60,
                             "5 healthy frames")
            assert daemon.session.stats.p == 0.0 and not pauses(printer)
            pid = predictor.engine.pid
            assert pid is not None and pid != os.getpid()
            assert os.getpriority(os.PRIO_PROCESS, pid) == 10
            start = len(printer.klippy.console)
            await printer.moonraker_call("printer.gcode.script", {"script": "FAILWATCH_STATUS"})
            status = await printer.klippy.wait_for_console(r"^failwatch: ", timeout=10,
                                                           start=start)
            assert "engine onnxruntime" in status and "running" in status
            healthy_frames = daemon.session.stats.prediction_num
            printer.camera.jpeg = with_red_patch(printer.camera.jpeg)
            await printer.klippy.wait_for_gcode(r"^PAUSE$", timeout=40)
            await printer.klippy.wait_for_print_state("paused", timeout=10)
            assert daemon.session.stats.p > 2.0
            await printer.klippy.wait_for_console(r"Print failure detected", timeout=10)
            assert predictor.engine.starts == 1
        assert not predictor.engine.running  # stopped with the daemon
    assert len(pauses(printer)) == 1
    assert healthy_frames >= 5


async def test_healthy_print_is_never_paused(tmp_path: Path) -> None:
    model = red_graph(tmp_path / "models" / "red.onnx")
    async with SimPrinter() as printer:
        cfg = onnx_config(printer, tmp_path, model)
        seed_established_printer(tmp_path)
        async with running_daemon(cfg) as daemon:
            await printer.start_print("benchy.gcode")
            await wait_until(lambda: daemon.session.stats.prediction_num >= 40, 90, "40 frames")
            assert daemon.session.stats.p == 0.0 and daemon.session.stats.ewm_mean == 0.0
            await asyncio.sleep(0.5)
        assert not pauses(printer)
        assert printer.klippy.status["print_stats"]["state"] == "printing"
