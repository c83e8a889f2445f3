"""Several cameras through the real Moonraker: each keeps its own statistics.

Issue 11 item 4: a failure seen by one camera pauses the print and names that
camera, the other camera's statistics are untouched; a dead camera is a fault
of that camera only, the other is still watched.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sim.camera import FakeCamera
from sim.cli_run import run_cli
from sim.daemon_config import config_for, seed_established_printer
from sim.harness import SimPrinter
from sim.waits import running_daemon, wait_until

pytestmark = pytest.mark.usefixtures("require_moonraker")

QUIET = 0.02
BAD = 3.0
SIDE_WEBCAM = {"name": "side", "enabled": True, "service": "mjpegstreamer"}


async def two_camera_config(printer: SimPrinter, front: FakeCamera, tmp_path: Path) -> Path:
    """front: a snapshot URL of its own; side: the printer's camera, as Moonraker lists it."""
    await printer.moonraker_call("server.webcams.post_item", {
        **SIDE_WEBCAM, "snapshot_url": printer.camera.url,
        "stream_url": printer.camera.stream_url})
    cfg = config_for(printer, tmp_path / "failwatch.cfg",
                     detection={"safe_frames": 0},
                     snapshots={"path": str(tmp_path / "snaps")},
                     **{"camera front": {"snapshot_url": front.url, "timeout": 1.0},
                        # from Moonraker's webcam list, found by its name
                        "camera side": {"webcam": "side"}})
    seed_established_printer(tmp_path, cameras=("front", "side"))
    return cfg


def gcode(printer: SimPrinter, word: str) -> list[str]:
    return [line for line in printer.klippy.gcode_lines if line.split()[:1] == [word]]


async def test_a_failure_seen_by_the_second_camera_pauses_and_names_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with FakeCamera(seed=7) as front, SimPrinter(webcams=[]) as printer:
        printer.predictor.score = lambda frame, pid: \
            BAD if pid.endswith("-side") and frame >= 5 else QUIET
        cfg = await two_camera_config(printer, front, tmp_path)
        async with running_daemon(cfg) as daemon:
            job = await printer.start_print("benchy.gcode")
            assert job is not None
            line = await printer.klippy.wait_for_console(r"Print failure detected", 30)
            await printer.klippy.wait_for_print_state("paused", 10)
            front_stats = daemon.session.track("front").stats
            side = daemon.session.track("side")
            status = daemon.status_dict()
        jid = job["job_id"]
        # each camera's frames under its own print id, so the server's statistics are too
        assert {r["print_id"] for r in printer.predictor.requests} == {f"{jid}-front",
                                                                      f"{jid}-side"}
        assert len(gcode(printer, "PAUSE")) == 1
        assert "camera side:" in line
        assert front.requests >= 5 and printer.camera.requests >= 5
        # the front camera's view is its own: quiet, its baseline as it was
        assert front_stats.p == pytest.approx(QUIET) and front_stats.ewm_mean <= QUIET + 1e-9
        assert front_stats.rolling_mean_long < 0.021
        assert side.level.value == "failure" and side.stats.ewm_mean > 1.0
        assert status["camera"] == "side" and status["cameras"]["front"]["level"] == "ok"
        assert "camera side: using webcam 'side'" in caplog.text
        snapshots = list((tmp_path / "snaps").glob("*failure-*-side*.jpg"))
        assert snapshots, "the annotated snapshot names the camera"


async def test_a_dead_camera_is_that_camera_s_fault_only(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with FakeCamera(seed=7) as front, SimPrinter(webcams=[]) as printer:
        printer.predictor.score = lambda frame, pid: QUIET
        front.mode = "error"
        cfg = await two_camera_config(printer, front, tmp_path)
        async with running_daemon(cfg) as daemon:
            await printer.start_print("benchy.gcode")
            side = daemon.session.track("side").stats
            await wait_until(lambda: side.prediction_num >= 15, 20, "15 frames of the side camera")
            assert daemon.session.track("front").stats.prediction_num == 0
            text = daemon.commands.status_text()
            front.mode = "ok"
            await wait_until(lambda: daemon.session.track("front").stats.prediction_num >= 1,
                             40, "the front camera back")
        assert not gcode(printer, "PAUSE")
        assert f"camera front: snapshot URL {front.url} answered HTTP 500; print not touched" \
            in caplog.text
        assert "camera front: working again" in caplog.text
        assert "camera side:" not in caplog.text.replace("camera side: using webcam", "")
        assert f"camera front {front.url}" in text and "camera side" in text


async def test_check_reports_every_camera(tmp_path: Path) -> None:
    async with FakeCamera(seed=7) as front, SimPrinter(webcams=[]) as printer:
        cfg = config_for(printer, tmp_path / "failwatch.cfg",
                         **{"camera front": {"snapshot_url": front.url,
                                             "mask": "0,0,0.25,0.15"},
                            "camera side": {"webcam": "side"}})
        code, out, _ = await run_cli("check", "--config", str(cfg))
        assert code == 1, out
        assert "[ OK ] camera front: " in out and "1280x720" in out
        assert "mask 0,0,0.25,0.15 painted out" in out
        assert ("[FAIL] camera side: no snapshot_url in [camera side] and no webcam named "
                "'side' in Moonraker's webcam list") in out
        assert "[ OK ] predictor:" in out  # scored with the camera that worked
