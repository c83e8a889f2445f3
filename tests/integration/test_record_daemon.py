"""[record] end to end: the daemon watching a print through the real Moonraker writes it down."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from failwatch_moonraker.tools.recording import FORMAT, file_stem
from sim.daemon_config import config_for, seed_established_printer
from sim.harness import SimPrinter
from sim.waits import running_daemon, wait_until

pytestmark = pytest.mark.usefixtures("require_moonraker")

QUIET = 0.02
BAD = 3.0






def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def frames_of(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if "type" not in r]


async def test_a_watched_print_is_recorded_frame_by_frame(tmp_path: Path) -> None:
    folder = tmp_path / "recordings"
    async with SimPrinter() as printer:
        printer.predictor.score = lambda frame, pid: QUIET if frame < 8 else BAD
        seed_established_printer(tmp_path, long_mean=0.02)
        cfg = config_for(printer, tmp_path / "failwatch.cfg",
                         record={"enabled": True, "path": str(folder), "frames": True},
                         notify={"printer_name": "voron-sim"})
        async with running_daemon(cfg) as daemon:
            job = await printer.start_print("benchy.gcode")
            assert job is not None
            await printer.klippy.wait_for_gcode(r"^PAUSE$", timeout=20)
            await printer.klippy.wait_for_print_state("paused", timeout=5)
            frames_seen = daemon.frames
    path = folder / f"{file_stem(job['job_id'])}.jsonl"
    records = lines(path)
    header = records[0]
    assert header["type"] == "header" and header["format"] == FORMAT
    assert header["print_id"] == job["job_id"]
    assert header["printer"] == "voron-sim" and header["file"] == "benchy.gcode"
    assert abs(header["start_time"] - job["start_time"]) < 5
    # the lifetime baseline the first frame started from
    assert header["stats"]["rolling_mean_long"] == 0.02
    assert header["stats"]["prediction_num_lifetime"] == 7200
    assert header["stats"]["prediction_num"] == 0
    assert header["params"]["safe_frames"] == 3
    frames = frames_of(records)
    assert len(frames) == frames_seen
    assert [f["stats"]["prediction_num"] for f in frames] == list(range(1, len(frames) + 1))
    first = frames[0]
    assert set(first) >= {"t", "p", "detections", "predictor", "stats", "level"}
    assert set(first["stats"]) == {"p", "ewm_mean", "rolling_mean_short", "rolling_mean_long",
                                   "prediction_num", "prediction_num_lifetime"}
    assert first["predictor"] == "obico" and first["level"] == "ok"
    assert first["p"] == pytest.approx(QUIET)
    assert first["detections"] and len(first["detections"][0][1]) == 4
    scores = [f["p"] for f in frames]  # what the predictor answered, in order
    bad = scores.index(BAD)
    assert scores[:bad] == pytest.approx([QUIET] * bad) and scores[bad:] == [BAD] * (
        len(scores) - bad)
    levels = [f["level"] for f in frames]
    assert "warning" in levels and levels[-1] == "failure"
    assert [f.get("fire") for f in frames].count("failure") == 1
    times = [f["t"] for f in frames]
    assert times == sorted(times)
    jpegs = sorted((folder / f"{file_stem(job['job_id'])}.frames").iterdir())
    assert [j.name for j in jpegs] == [f"{n:06d}.jpg" for n in range(1, len(frames) + 1)]
    assert jpegs[0].read_bytes() == printer.camera.jpeg


async def test_a_restart_mid_print_appends_to_the_same_recording(tmp_path: Path) -> None:
    folder = tmp_path / "recordings"
    async with SimPrinter() as printer:
        cfg = config_for(printer, tmp_path / "failwatch.cfg",
                         record={"enabled": True, "path": str(folder)})
        async with running_daemon(cfg) as daemon:
            job = await printer.start_print("benchy.gcode")
            assert job is not None
            await wait_until(lambda: daemon.session.stats.prediction_num >= 5, 10, "5 frames")
        before = daemon.session.stats.prediction_num
        async with running_daemon(cfg) as daemon:
            await wait_until(lambda: daemon.session.stats.prediction_num >= before + 5, 10,
                             "5 more frames")
    files = list(folder.glob("*.jsonl"))
    assert files == [folder / f"{file_stem(job['job_id'])}.jsonl"]
    records = lines(files[0])
    assert [r.get("type") for r in records].count("header") == 1
    restarts = [i for i, r in enumerate(records) if r.get("type") == "restart"]
    assert len(restarts) == 1
    restart = records[restarts[0]]
    # the restart line carries the statistics the new daemon started from
    assert restart["stats"] == records[restarts[0] - 1]["stats"]
    numbers = [f["stats"]["prediction_num"] for f in frames_of(records)]
    assert numbers == list(range(1, len(numbers) + 1))
    assert numbers[-1] >= before + 5


async def test_an_unwritable_folder_is_reported_once_and_watching_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    blocker = tmp_path / "recordings"
    blocker.write_text("a file where the folder should be\n")  # root ignores chmod; this not
    async with SimPrinter() as printer:
        printer.predictor.score = lambda frame, pid: QUIET if frame < 12 else BAD
        seed_established_printer(tmp_path)
        cfg = config_for(printer, tmp_path / "failwatch.cfg",
                         record={"enabled": True, "path": str(blocker), "frames": True})
        async with running_daemon(cfg) as daemon:
            await printer.start_print("benchy.gcode")
            await printer.klippy.wait_for_gcode(r"^PAUSE$", timeout=20)
            assert daemon.frames >= 12
    errors = [r for r in caplog.records if r.name == "failwatch.record"
              and r.levelno >= logging.WARNING]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    message = errors[0].getMessage()
    assert str(blocker) in message and "recording paused" in message
    assert "watching goes on" in message
    assert blocker.read_text() == "a file where the folder should be\n"
