"""The watch loop never ends silently (issue 10 items 4 and 5), through the real Moonraker."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from failwatch_moonraker.predictors import Prediction
from sim.daemon_config import config_for
from sim.harness import SimPrinter
from sim.waits import running_daemon, wait_until

pytestmark = pytest.mark.usefixtures("require_moonraker")


class Buggy:
    """A predictor with a bug that shows on its third frame (as an OverflowError did)."""

    name = "buggy"

    def __init__(self) -> None:
        self.calls = 0

    async def predict(self, jpeg: bytes, print_id: str) -> Prediction:
        self.calls += 1
        if self.calls == 3:
            raise OverflowError("int too large to convert to float")
        return Prediction(p=0.02)

    async def close(self) -> None:
        pass


async def test_an_unexpected_error_skips_the_frame_and_watching_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with SimPrinter() as printer:
        cfg = config_for(printer, tmp_path / "failwatch.cfg")
        async with running_daemon(cfg) as daemon:
            buggy = Buggy()
            daemon.predictor = buggy
            await printer.start_print("benchy.gcode")
            await wait_until(lambda: daemon.session.stats.prediction_num >= 10, 20,
                             "10 frames counted after the bug")
            assert buggy.calls >= 11
        assert printer.klippy.status["print_stats"]["state"] == "printing"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "watch: unexpected error in a frame; frame skipped, print not touched, watching goes on"]
    assert errors[0].exc_info is not None and "OverflowError" in caplog.text  # the traceback
    assert "Task exception was never retrieved" not in caplog.text


async def test_a_new_print_retries_a_camera_at_once_however_long_it_was_dead(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with SimPrinter() as printer:
        cfg = config_for(printer, tmp_path / "failwatch.cfg",
                         camera={"snapshot_url": printer.camera.url, "timeout": 1.0})
        printer.camera.mode = "error"
        async with running_daemon(cfg) as daemon:
            await printer.start_print("one.gcode")
            watch = daemon.watches[0]
            await wait_until(lambda: watch.fault.count >= 4, 20, "four camera faults")
            assert watch.fault.backoff(0.2) >= 8  # the backoff has grown
            await printer.moonraker_call("printer.print.cancel")
            await printer.klippy.wait_for_print_state("cancelled", 5)
            printer.camera.mode = "ok"
            job = await printer.start_print("two.gcode")
            assert job is not None
            await wait_until(lambda: daemon.session.print_id == job["job_id"], 10, "print two")
            # not after the 8-16 s the first print's faults had built up
            await wait_until(lambda: daemon.session.stats.prediction_num >= 1, 3,
                             "a frame of print two within 3 s")
