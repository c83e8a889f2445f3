"""The daemon with the obico_ml_api and printwatch backends, through the real Moonraker."""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
import pytest

from failwatch_moonraker.predictors.remote.ml_api import ObicoMLAPIPredictor
from sim.daemon_config import config_for
from sim.harness import SimPrinter
from sim.ml_api import FakeMLAPI
from sim.printwatch import FakePrintWatch
from sim.waits import running_daemon

pytestmark = pytest.mark.usefixtures("require_moonraker")




def pauses(printer: SimPrinter) -> list[str]:
    return [line for line in printer.klippy.gcode_lines if line.split()[:1] == ["PAUSE"]]


async def test_ml_api_backend_serves_frames_and_pauses_a_failure(tmp_path: Path) -> None:
    async with SimPrinter() as printer, FakeMLAPI(token="ml-secret") as ml:
        ml.refetch = True
        ml.score = lambda frame, url: 0.02 if frame < 8 else 3.0
        cfg = config_for(printer, tmp_path / "failwatch.cfg", predictor={
            "backend": "obico_ml_api", "url": ml.url, "access_token": "ml-secret",
            "image_bind": "127.0.0.1", "image_port": 0})
        async with running_daemon(cfg) as daemon:
            predictor = daemon.predictor
            assert isinstance(predictor, ObicoMLAPIPredictor)
            server = predictor.server
            assert server is not None and server.running  # started with the daemon
            await printer.start_print("benchy.gcode")
            await printer.klippy.wait_for_gcode(r"^PAUSE$", timeout=20)
            await printer.klippy.wait_for_print_state("paused", timeout=5)
            assert server.pending == 0
        assert not server.running  # stopped with the daemon
        base = predictor.image_base
    assert len(pauses(printer)) == 1
    downloads = [r for r in ml.requests if r["download_status"] is not None]
    assert len(downloads) >= 9
    assert {r["img_size"] for r in downloads} == {len(printer.camera.jpeg)}
    assert {r["refetch_status"] for r in downloads} == {404}
    assert len({r["img"] for r in downloads}) == len(downloads)  # a new URL per frame
    assert all(r["authorization"] == "Bearer ml-secret" for r in ml.requests)
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            async with http.get(base + "/"):
                pass


async def test_printwatch_backend_with_the_buffer_policy(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    caplog.set_level(logging.INFO)
    async with SimPrinter() as printer, FakePrintWatch("sub_sim-key") as pw:
        pw.score = lambda frame, ticket: 0.05 if frame < 6 else 0.9
        cfg = config_for(printer, tmp_path / "failwatch.cfg",
                         predictor={"backend": "printwatch", "url": pw.url,
                                    "api_key": "sub_sim-key", "printer_id": "farm-7"},
                         detection={"policy": "buffer", "buffer_length": 5,
                                    "buffer_percent": 60, "buffer_warning_percent": 40,
                                    "safe_frames": 0})
        async with running_daemon(cfg):
            await printer.start_print("benchy.gcode")
            await printer.klippy.wait_for_gcode(r"^PAUSE$", timeout=20)
            line = await printer.klippy.wait_for_console(r"Print failure detected", timeout=5)
    # 6 quiet frames, then defective ones: 2 of 5 warn, 3 of 5 pause
    assert len(pw.requests) >= 9
    assert "defective=3/5 (p>=0.6)" in line
    warning = [c for c in printer.klippy.console if "Possible print failure" in c]
    assert warning and "defective=2/5" in warning[0]
    bodies = [r["body"] for r in pw.requests]
    assert {b["ticket_id"] for b in bodies} == {bodies[0]["ticket_id"]}
    assert {b["printer_id"] for b in bodies} == {"farm-7"}
    assert all(b["job_name"] == "benchy.gcode" and b["state"] == 0 for b in bodies)
    assert bodies[-1]["printTime"] >= 0 and isinstance(bodies[-1]["progress"], float)
    assert bodies[-1]["conf"] == 0.6 and bodies[-1]["buffer_length"] == 5
    assert "sub_sim-key" not in caplog.text
