"""The daemon with PiNozCam's real model through the real Moonraker.

The daemon runs as the user runs it (its own process, so its memory is its own);
the emulated Klippy prints and the fake camera serves drawn pictures: a printed
part, then a tangle of filament. Few frames: each one is real inference.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import pytest

from sim.cli_run import CLI
from sim.daemon_config import config_for
from sim.drawn import part_jpeg, spaghetti_jpeg
from sim.harness import SimPrinter
from sim.procs import children, nice_of, rss_mb
from sim.waits import wait_until

pytestmark = pytest.mark.usefixtures("require_moonraker")

UNLOAD_AFTER = 4.0
DAEMON_RSS_MB = 50.0
ENGINE = "nozcam"  # the runner's command name, as ps shows it


def engines(daemon_pid: int) -> list[int]:
    return children(daemon_pid, ENGINE)


def pauses(printer: SimPrinter) -> list[str]:
    return [line for line in printer.klippy.gcode_lines if line.split()[:1] == ["PAUSE"]]


async def test_real_model_watches_a_print_survives_a_kill_and_pauses_spaghetti(
        tmp_path: Path) -> None:
    async with SimPrinter() as printer:
        printer.camera.jpeg = part_jpeg()
        cfg = config_for(
            printer, tmp_path / "failwatch.cfg",
            predictor={"backend": "pinozcam", "timeout": 60, "unload_after": UNLOAD_AFTER},
            # PiNozCam-like: a frame is alarming at severity 1; 2 of the last 4 pause.
            detection={"interval": 0.5, "policy": "buffer", "buffer_confidence": 1.0,
                       "buffer_length": 4, "buffer_percent": 50, "safe_frames": 0})
        log_file = tmp_path / "logs" / "failwatch.log"

        def log() -> str:
            return log_file.read_text() if log_file.exists() else ""

        proc = await asyncio.create_subprocess_exec(
            *CLI, "--config", str(cfg), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        try:
            await wait_until(lambda: "Klippy ready" in log(), 30, "the daemon to connect")
            await asyncio.sleep(1.0)
            assert engines(proc.pid) == []  # not started at boot

            # A healthy print: the engine starts with the first frame, nothing pauses.
            await printer.start_print("benchy.gcode", timeout=20)
            await wait_until(lambda: engines(proc.pid), 60, "the engine to start")
            first = engines(proc.pid)[0]
            assert nice_of(first) == 10
            seen = printer.camera.requests
            await wait_until(lambda: printer.camera.requests >= seen + 5, 60, "5 frames")
            daemon_rss = rss_mb(proc.pid)
            assert daemon_rss is not None and daemon_rss <= DAEMON_RSS_MB, daemon_rss
            assert pauses(printer) == []

            # The engine dies (the OOM killer, say): restarted, no pause, frames resume.
            os.kill(first, signal.SIGKILL)
            await wait_until(lambda: "pinozcam was killed by SIGKILL" in log(), 30,
                             "the engine's death to be logged")
            await wait_until(lambda: engines(proc.pid) and engines(proc.pid)[0] != first, 60,
                             "a new engine")
            seen = printer.camera.requests
            await wait_until(lambda: printer.camera.requests >= seen + 3, 60, "3 more frames")
            assert pauses(printer) == []
            assert printer.klippy.status["print_stats"]["state"] == "printing"

            # Spaghetti: the real model's answer pauses the print.
            printer.camera.jpeg = spaghetti_jpeg()
            await printer.klippy.wait_for_gcode(r"^PAUSE$", timeout=60)
            await printer.klippy.wait_for_print_state("paused", timeout=10)
            line = await printer.klippy.wait_for_console(r"Print failure detected", timeout=10)
            assert "defective=2/4" in line
            assert engines(proc.pid)  # paused is still the print: the engine stays

            # The print ends: the engine is gone unload_after seconds later.
            await printer.moonraker_call("printer.print.cancel")
            await printer.klippy.wait_for_print_state("cancelled", timeout=10)
            ended = asyncio.get_running_loop().time()
            await wait_until(lambda: not engines(proc.pid), UNLOAD_AFTER + 30,
                             "the engine to unload")
            took = asyncio.get_running_loop().time() - ended
            assert took >= UNLOAD_AFTER - 1.0, took
            assert re.search(r"pinozcam: stopped 4 s after the print", log())
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 15)
                except asyncio.TimeoutError:
                    proc.kill()
                    await proc.wait()
    assert len(pauses(printer)) == 1
    text = log()
    assert "pinozcam: working again" in text or "predictor: working again" in text
    assert "Traceback" not in text
