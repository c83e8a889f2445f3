"""Replay reproduces the daemon: a recording made by the real daemon, replayed, decides the same.

The print has everything that carries state: a warm-up, a warning burst that
dies down, a daemon restart mid-print, a pause, the user's resume (and its
cooldown) and failure frames after it.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from failwatch_moonraker.cli import main
from failwatch_moonraker.core.policy import Level
from failwatch_moonraker.tools.recording import file_stem, read_recording
from failwatch_moonraker.tools.replay import make_settings, replay
from sim.camera import FakeCamera
from sim.daemon_config import config_for, seed_established_printer
from sim.harness import SimPrinter
from sim.waits import running_daemon, wait_until

pytestmark = pytest.mark.usefixtures("require_moonraker")


def pattern(frame: int, print_id: str) -> float:
    """Quiet with a little texture, a burst that warns, then spaghetti."""
    if 30 <= frame < 35:
        return 1.2
    if frame >= 50:
        return 2.5 + 0.1 * (frame % 3)
    return 0.02 + 0.01 * (frame % 4)






async def test_replay_gives_exactly_the_daemons_levels(tmp_path: Path) -> None:
    folder = tmp_path / "recordings"
    async with SimPrinter() as printer:
        printer.predictor.score = pattern
        seed_established_printer(tmp_path, long_mean=0.03)
        cfg = config_for(printer, tmp_path / "failwatch.cfg",
                         record={"enabled": True, "path": str(folder)},
                         detection={"resume_cooldown": 1.0, "warning_cooldown": 0.5,
                                    "safe_frames": 3, "interval": 0.1})
        async with running_daemon(cfg) as daemon:
            job = await printer.start_print("benchy.gcode")
            assert job is not None
            await wait_until(lambda: daemon.session.stats.prediction_num >= 20, 10, "20 frames")
        async with running_daemon(cfg) as daemon:  # a restart mid-print
            await printer.klippy.wait_for_gcode(r"^PAUSE$", timeout=20)
            await printer.klippy.wait_for_print_state("paused", timeout=5)
            await wait_until(lambda: daemon.session.print_state == "paused", 5, "daemon sees it")
            paused_at = daemon.session.stats.prediction_num
            await printer.moonraker_call("printer.print.resume")
            await wait_until(lambda: daemon.session.stats.prediction_num >= paused_at + 10, 10,
                             "frames after the resume")
    rec = read_recording(folder / f"{file_stem(job['job_id'])}.jsonl")
    assert rec.restarts == 1
    assert sum(f.resumed_at is not None for f in rec.frames) == 1
    recorded = [f.level for f in rec.frames]
    assert {"ok", "warning", "failure"} <= set(recorded)
    burst = recorded.index("warning")
    assert burst < 45 and "ok" in recorded[burst:45]  # the burst warned, then it was quiet
    result = replay(rec, make_settings(rec.params, {}), follow=True)
    assert [str(f.level) for f in result.frames] == recorded
    assert result.mismatches == 0
    assert [str(f.fire) if f.fire else None for f in result.frames] == \
        [f.fire for f in rec.frames]
    for mine, theirs in zip(result.frames, rec.frames, strict=True):
        assert theirs.stats is not None
        assert (mine.n, mine.ewm, mine.short, mine.long) == (
            theirs.stats["prediction_num"], theirs.stats["ewm_mean"],
            theirs.stats["rolling_mean_short"], theirs.stats["rolling_mean_long"])
    # failure frames right after the resume were held back by resume_cooldown
    resumed = next(i for i, f in enumerate(rec.frames) if f.resumed_at is not None)
    assert rec.frames[resumed].level == "failure" and rec.frames[resumed].fire != "failure"
    assert [f.fire for f in result.frames].count(Level.FAILURE) == 1

    # the command line says the same
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["replay", str(rec.path)]) == 0
    text = out.getvalue()
    assert f"levels: identical to what failwatch decided on all {len(rec.frames)}" in text
    first_failure = next(f for f in result.frames if f.level is Level.FAILURE)
    assert f"first failure: frame {first_failure.n} at" in text


async def test_two_cameras_recorded_by_the_daemon_replay_to_its_levels(tmp_path: Path) -> None:
    """Two cameras, a failure only the side camera sees, a restart and a resume mid-print:
    replay decides what the daemon did, frame by frame, and names the camera that paused."""
    folder = tmp_path / "recordings"
    async with FakeCamera(seed=7) as front, SimPrinter(webcams=[]) as printer:
        await printer.moonraker_call("server.webcams.post_item", {
            "name": "side", "enabled": True, "service": "mjpegstreamer",
            "snapshot_url": printer.camera.url, "stream_url": printer.camera.stream_url})
        printer.predictor.score = lambda frame, pid: \
            2.5 if pid.endswith("-side") and frame >= 25 else 0.02 + 0.01 * (frame % 4)
        cfg = config_for(printer, tmp_path / "failwatch.cfg",
                         record={"enabled": True, "path": str(folder), "frames": True},
                         detection={"resume_cooldown": 1.0, "warning_cooldown": 0.5,
                                    "safe_frames": 3, "interval": 0.1},
                         **{"camera front": {"snapshot_url": front.url, "timeout": 1.0},
                            "camera side": {"webcam": "side"}})
        seed_established_printer(tmp_path, cameras=("front", "side"), long_mean=0.03)
        async with running_daemon(cfg) as daemon:
            job = await printer.start_print("benchy.gcode")
            assert job is not None
            await wait_until(lambda: daemon.session.track("side").stats.prediction_num >= 12,
                             10, "12 frames of the side camera")
        async with running_daemon(cfg) as daemon:  # a restart mid-print
            await printer.klippy.wait_for_gcode(r"^PAUSE$", timeout=20)
            await printer.klippy.wait_for_print_state("paused", timeout=5)
            await wait_until(lambda: daemon.session.print_state == "paused", 5, "daemon sees it")
            paused_at = daemon.session.track("side").stats.prediction_num
            await printer.moonraker_call("printer.print.resume")
            await wait_until(
                lambda: daemon.session.track("side").stats.prediction_num >= paused_at + 10,
                10, "frames after the resume")
    path = folder / f"{file_stem(job['job_id'])}.jsonl"
    rec = read_recording(path)
    assert rec.camera_names() == ["front", "side"] and rec.restarts == 1
    assert {f.camera for f in rec.frames} == {"front", "side"}
    assert {f.seen for f in rec.frames_of("front")} == {"ok"}
    fired = [(f.camera, f.fire) for f in rec.frames if f.fire == "failure"]
    assert fired == [("side", "failure")]
    result = replay(rec, make_settings(rec.params, {}), follow=True)
    assert result.mismatches == 0
    assert [str(f.fire) if f.fire else None for f in result.frames] == \
        [f.fire for f in rec.frames]
    for mine, theirs in zip(result.frames, rec.frames, strict=True):
        assert theirs.stats is not None and (mine.camera, str(mine.seen)) == \
            (theirs.camera, theirs.seen)
        assert (mine.n, mine.ewm, mine.short, mine.long) == (
            theirs.stats["prediction_num"], theirs.stats["ewm_mean"],
            theirs.stats["rolling_mean_short"], theirs.stats["rolling_mean_long"])
    jpegs = {p.name for p in (folder / f"{file_stem(job['job_id'])}.frames").iterdir()}
    assert {"000001-front.jpg", "000001-side.jpg"} <= jpegs

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["replay", str(path)]) == 0
    text = out.getvalue()
    pause = result.first_fire(Level.FAILURE)
    assert pause is not None and pause.camera == "side"
    assert f"first pause:   frame {pause.n} of camera side at {pause.t:.1f} s" in text
    assert f"levels: identical to what failwatch decided on all {len(rec.frames)}" in text
    front_part = text[text.index("Camera front:"):text.index("Camera side:")]
    assert "  ok on every frame" in front_part and "  first failure: none" in front_part
