"""The daemon end to end: real Moonraker, emulated Klippy, fake camera and predictor.

Every test asserts what the user would see: the G-code that reached the
printer, the console lines, the log lines, the print state.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from sim.daemon_config import config_for, seed_established_printer
from sim.harness import SimPrinter
from sim.waits import running_daemon, wait_until

pytestmark = pytest.mark.usefixtures("require_moonraker")

QUIET = 0.02
BAD = 3.0  # the fake predictor caps each box at 1, three boxes at most


def fails_after(quiet_frames: int) -> Callable[[int, str], float]:
    """A predictor that sees a clean print, then spaghetti."""
    return lambda frame, print_id: QUIET if frame < quiet_frames else BAD






def gcode(printer: SimPrinter, word: str) -> list[str]:
    return [line for line in printer.klippy.gcode_lines if line.split()[:1] == [word]]


async def test_healthy_print_is_watched_and_never_paused(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with SimPrinter() as printer:
        cfg = config_for(printer, tmp_path / "failwatch.cfg")
        async with running_daemon(cfg):
            job = await printer.start_print("benchy.gcode")
            assert job is not None
            await printer.predictor.wait_for_requests(20, timeout=20)
            # every frame was tagged with Moonraker's history job id
            assert {r["print_id"] for r in printer.predictor.requests} == {job["job_id"]}
            assert all(r["img_content_type"] == "image/jpeg" for r in printer.predictor.requests)
            # the JPEG went through untouched (no flip/rotation configured)
            assert {r["img_size"] for r in printer.predictor.requests} == {len(printer.camera.jpeg)}
        assert gcode(printer, "PAUSE") == []
        assert printer.klippy.status["print_stats"]["state"] == "printing"
        assert not [c for c in printer.klippy.console if "failwatch" in c]
    assert f"watching print benchy.gcode (job {job['job_id']})" in caplog.text
    assert "using webcam 'simcam'" in caplog.text


async def test_failure_mid_print_pauses_turns_heaters_off_and_says_why(tmp_path: Path) -> None:
    async with SimPrinter() as printer:
        printer.predictor.score = fails_after(8)
        cfg = config_for(printer, tmp_path / "failwatch.cfg")
        async with running_daemon(cfg):
            await printer.moonraker_call("printer.gcode.script",
                                         {"script": "M104 S215\nM140 S60"})
            await printer.start_print("benchy.gcode")
            await printer.klippy.wait_for_gcode(r"^PAUSE$", timeout=20)
            await printer.klippy.wait_for_gcode(r"^TURN_OFF_HEATERS$", timeout=5)
            line = await printer.klippy.wait_for_console(r"failwatch: Print failure detected",
                                                         timeout=5)
            await printer.klippy.wait_for_print_state("paused", timeout=5)
        assert "p=3.00" in line and "ewm=" in line and "long=" in line
        assert "paused the print, turned all heaters off" in line
        assert line.startswith("!! failwatch:")
        assert printer.klippy.status["extruder"]["target"] == 0
        assert printer.klippy.status["heater_bed"]["target"] == 0
        # the warning came first, on the console too
        warning = [c for c in printer.klippy.console if "Possible print failure" in c]
        assert warning and printer.klippy.console.index(warning[0]) < \
            printer.klippy.console.index(line)
        # once per print: one PAUSE only
        assert len(gcode(printer, "PAUSE")) == 1


async def test_paused_print_is_not_scored_and_user_resume_is_respected(tmp_path: Path) -> None:
    async with SimPrinter() as printer:
        printer.predictor.score = fails_after(8)
        cfg = config_for(printer, tmp_path / "failwatch.cfg",
                         actions={"on_failure": "pause, notify"})
        async with running_daemon(cfg):
            await printer.start_print("benchy.gcode")
            await printer.klippy.wait_for_gcode(r"^PAUSE$", timeout=20)
            await printer.klippy.wait_for_print_state("paused", timeout=5)
            await asyncio.sleep(0.3)
            frames_when_paused = len(printer.predictor.requests)
            await asyncio.sleep(1.0)
            assert len(printer.predictor.requests) == frames_when_paused  # no frames while paused
            await printer.moonraker_call("printer.print.resume")
            await printer.klippy.wait_for_print_state("printing", timeout=5)
            await printer.predictor.wait_for_requests(frames_when_paused + 10, timeout=10)
        # still "failing", but the user looked and resumed: not paused again
        assert len(gcode(printer, "PAUSE")) == 1
        assert printer.klippy.status["print_stats"]["state"] == "printing"
        assert not gcode(printer, "TURN_OFF_HEATERS")  # not configured here


async def test_heaters_off_delay_is_skipped_when_the_user_resumes(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture
                                                                  ) -> None:
    caplog.set_level(logging.INFO)
    async with SimPrinter() as printer:
        printer.predictor.score = fails_after(8)
        cfg = config_for(printer, tmp_path / "failwatch.cfg",
                         actions={"on_failure": "pause, bed_off, notify",
                                  "heaters_off_delay": 1.5})
        async with running_daemon(cfg):
            await printer.start_print("benchy.gcode")
            await printer.klippy.wait_for_gcode(r"^PAUSE$", timeout=20)
            line = await printer.klippy.wait_for_console(r"Print failure detected", timeout=5)
            assert "will turn the bed off in 1.5 s unless resumed" in line
            await printer.moonraker_call("printer.print.resume")
            await asyncio.sleep(2.5)
        assert not [g for g in printer.klippy.gcode_lines if "heater_bed" in g]
    assert "heaters left on: the print was resumed" in caplog.text


async def test_heaters_off_delay_runs_while_still_paused(tmp_path: Path) -> None:
    async with SimPrinter() as printer:
        printer.predictor.score = fails_after(8)
        cfg = config_for(printer, tmp_path / "failwatch.cfg",
                         actions={"on_failure": "pause, extruder_off, notify",
                                  "heaters_off_delay": 1.0})
        async with running_daemon(cfg):
            await printer.moonraker_call("printer.gcode.script", {"script": "M104 S215"})
            await printer.start_print("benchy.gcode")
            await printer.klippy.wait_for_gcode(r"^PAUSE$", timeout=20)
            start = len(printer.klippy.gcode_lines)
            await asyncio.sleep(0.5)
            assert printer.klippy.status["extruder"]["target"] == 215  # not yet
            await printer.klippy.wait_for_gcode(
                r"^SET_HEATER_TEMPERATURE HEATER=extruder TARGET=0$", timeout=5, start=start)
            await printer.klippy.wait_for_console(r"still paused after 1 s: turned the hotend off",
                                                  timeout=5)
        assert printer.klippy.status["extruder"]["target"] == 0


async def test_klippy_restart_mid_print_watching_goes_on(tmp_path: Path) -> None:
    async with SimPrinter() as printer:
        cfg = config_for(printer, tmp_path / "failwatch.cfg")
        seed_established_printer(tmp_path)
        async with running_daemon(cfg):
            await printer.start_print("first.gcode")
            await printer.predictor.wait_for_requests(3, timeout=10)
            await printer.klippy.restart()
            await printer.mr.wait_klippy_ready()
            # Moonraker dropped the daemon's subscription; it must have subscribed again
            printer.predictor.score = fails_after(8)
            job = await printer.start_print("second.gcode")
            assert job is not None
            await printer.klippy.wait_for_gcode(r"^PAUSE$", timeout=20)
        assert job["job_id"] in printer.predictor.print_ids


async def test_moonraker_restart_the_daemon_reconnects(tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with SimPrinter() as printer:
        cfg = config_for(printer, tmp_path / "failwatch.cfg")
        seed_established_printer(tmp_path)
        async with running_daemon(cfg) as daemon:
            await printer.start_print("benchy.gcode")
            await printer.predictor.wait_for_requests(3, timeout=10)
            await printer.mr.restart()
            await printer.mr.wait_klippy_ready()
            await wait_until(lambda: daemon.client.connects >= 2, 20, "reconnect")
            seen = len(printer.predictor.requests)
            printer.predictor.score = lambda frame, pid: QUIET if frame < seen + 5 else BAD
            await printer.klippy.wait_for_gcode(r"^PAUSE$", timeout=25)
    assert "connection lost; reconnecting" in caplog.text


@pytest.mark.parametrize(
    ("mode", "log_text"),
    [
        ("error", "snapshot URL {url} answered HTTP 500"),
        ("not_jpeg", "did not return a JPEG"),
        ("hang", "gave no image within 1 s"),
    ],
)
async def test_camera_faults_never_pause_and_watching_resumes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: str, log_text: str) -> None:
    caplog.set_level(logging.INFO)
    async with SimPrinter() as printer:
        printer.predictor.score = lambda frame, pid: BAD  # any frame that got through would fail
        cfg = config_for(printer, tmp_path / "failwatch.cfg",
                         camera={"snapshot_url": printer.camera.url, "timeout": 1.0},
                         detection={"safe_frames": 0})
        printer.camera.mode = mode
        async with running_daemon(cfg) as daemon:
            await printer.start_print("benchy.gcode")
            await asyncio.sleep(3.0)
            assert printer.predictor.requests == []
            assert not gcode(printer, "PAUSE")
            assert log_text.format(url=printer.camera.url) in caplog.text
            assert "print not touched" in caplog.text
            printer.camera.mode = "ok"
            await printer.predictor.wait_for_requests(1, timeout=10)
            assert daemon.frames >= 1
        assert "camera: working again" in caplog.text


@pytest.mark.parametrize(
    ("mode", "log_text"),
    [
        ("500", "the predictor answered HTTP 500"),
        ("429", "the predictor asks to slow down (HTTP 429): You are running too hot!"),
        ("400", "the predictor refused the frame (HTTP 400)"),
        ("malformed", "bad answer: not JSON"),
        ("hang", "no answer within 1 s"),
    ],
)
async def test_predictor_faults_never_pause(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                            mode: str, log_text: str) -> None:
    caplog.set_level(logging.INFO)
    async with SimPrinter() as printer:
        printer.predictor.mode = mode
        printer.predictor.retry_after = 1
        cfg = config_for(printer, tmp_path / "failwatch.cfg",
                         predictor={"timeout": 1.0}, detection={"safe_frames": 0})
        async with running_daemon(cfg) as daemon:
            await printer.start_print("benchy.gcode")
            await printer.predictor.wait_for_requests(2, timeout=15)
            assert not gcode(printer, "PAUSE")
            assert daemon.session.stats.prediction_num == 0  # faults are no evidence
            assert log_text in caplog.text
            printer.predictor.mode = "ok"
            await wait_until(lambda: daemon.session.stats.prediction_num > 0, 35, "recovery")
        assert printer.klippy.status["print_stats"]["state"] == "printing"


async def test_predictor_401_tells_the_user_and_backs_off(tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    caplog.set_level(logging.INFO)
    async with SimPrinter() as printer:
        printer.predictor.mode = "401"
        cfg = config_for(printer, tmp_path / "failwatch.cfg")
        async with running_daemon(cfg):
            await printer.start_print("benchy.gcode")
            line = await printer.klippy.wait_for_console(r"refused the credentials", timeout=10)
            await asyncio.sleep(1.5)
            assert len(printer.predictor.requests) == 1  # long backoff, no hammering
        assert line.startswith("!! failwatch:")
        assert "Check [predictor] serial_no and access_token" in line
        assert "Invalid credentials" in line
        assert not gcode(printer, "PAUSE")
    assert printer.access_token not in caplog.text
    assert printer.access_token not in " ".join(printer.klippy.console)


async def test_moonraker_api_key(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with SimPrinter(require_api_key=True) as printer:
        assert printer.api_key
        # without the key: a clear log line and a console message, no crash
        cfg = config_for(printer, tmp_path / "nokey.cfg", with_api_key=False)
        async with running_daemon(cfg, ready=False) as daemon:
            await wait_until(lambda: "requires authorization" in caplog.text, 10, "auth error")
            line = await printer.klippy.wait_for_console(r"failwatch: Moonraker requires", 10)
            assert "[moonraker] api_key" in line
            assert not daemon.client.ready.is_set()
        # with the key: watching works
        cfg = config_for(printer, tmp_path / "key.cfg")
        async with running_daemon(cfg):
            await printer.start_print("benchy.gcode")
            await printer.predictor.wait_for_requests(2, timeout=10)
    assert printer.api_key not in caplog.text


async def test_wrong_api_key_is_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with SimPrinter(require_api_key=True) as printer:
        cfg = config_for(printer, tmp_path / "failwatch.cfg",
                         moonraker={"api_key": "0123456789abcdef0123456789abcdef"})
        async with running_daemon(cfg, ready=False):
            await wait_until(lambda: "refused the api_key" in caplog.text, 10, "auth error")
        assert "0123456789abcdef0123456789abcdef" not in caplog.text




async def test_restart_mid_print_resumes_the_statistics(tmp_path: Path) -> None:
    async with SimPrinter() as printer:
        cfg = config_for(printer, tmp_path / "failwatch.cfg")
        async with running_daemon(cfg) as daemon:
            job = await printer.start_print("benchy.gcode")
            assert job is not None
            await wait_until(lambda: daemon.session.stats.prediction_num >= 5, 10, "5 frames")
        state = json.loads((tmp_path / "failwatch" / "state.json").read_text())
        saved = state["session"]
        assert saved["print_id"] == job["job_id"]
        frames = saved["stats"]["prediction_num"]
        assert frames >= 5 and saved["stats"]["prediction_num_lifetime"] == frames
        async with running_daemon(cfg) as daemon:
            await wait_until(lambda: daemon.session.stats.prediction_num > frames, 10, "resume")
            assert daemon.session.print_id == job["job_id"]
            assert daemon.session.stats.prediction_num_lifetime == \
                daemon.session.stats.prediction_num


async def test_print_end_resets_print_stats_keeps_lifetime(tmp_path: Path) -> None:
    async with SimPrinter() as printer:
        cfg = config_for(printer, tmp_path / "failwatch.cfg")
        async with running_daemon(cfg) as daemon:
            await printer.start_print("one.gcode")
            await wait_until(lambda: daemon.session.stats.prediction_num >= 3, 10, "frames")
            await printer.moonraker_call("printer.print.cancel")
            await printer.klippy.wait_for_print_state("cancelled", 5)
            await wait_until(lambda: daemon.session.print_id is None, 5, "print end")
            lifetime = daemon.session.stats.prediction_num_lifetime
            assert lifetime >= 3 and daemon.session.stats.prediction_num == 0
            job = await printer.start_print("two.gcode")
            assert job is not None
            await wait_until(lambda: daemon.session.print_id == job["job_id"], 5, "new print")
            await wait_until(lambda: daemon.session.stats.prediction_num >= 1, 5, "frame")
            assert daemon.session.stats.prediction_num_lifetime > lifetime
