"""The command line as a user runs it: a real process, real signals, real output."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest

from failwatch_moonraker import __version__
from sim.cli_run import CLI, run_cli
from sim.daemon_config import config_for
from sim.harness import SimPrinter

pytestmark = pytest.mark.usefixtures("require_moonraker")





async def test_version_and_help() -> None:
    code, out, _ = await run_cli("--version")
    assert code == 0 and out.strip() == f"failwatch-moonraker {__version__}"
    code, out, _ = await run_cli("--help")
    assert code == 0
    assert "--config PATH" in out and "check" in out
    assert "~/printer_data/config/failwatch.cfg" in out


async def test_broken_config_names_file_section_option(tmp_path: Path) -> None:
    cfg = tmp_path / "failwatch.cfg"
    cfg.write_text("[predictor]\nserial_no: X\naccess_token: SECRETTOKEN\n"
                   "[detection]\ninterval: 0.05\n")
    code, out, err = await run_cli("--config", str(cfg))
    assert code == 2
    assert f"{cfg}: [detection] interval: must be a number >= 0.1, got '0.05'" in err
    assert "SECRETTOKEN" not in err + out


async def test_missing_config_says_where_it_looked(tmp_path: Path) -> None:
    code, _, err = await run_cli("check", "--config", str(tmp_path / "nope.cfg"))
    assert code == 2
    assert str(tmp_path / "nope.cfg") in err


async def test_check_reports_each_edge(tmp_path: Path) -> None:
    async with SimPrinter() as printer:
        cfg = config_for(printer, tmp_path / "failwatch.cfg")
        code, out, _ = await run_cli("check", "--config", str(cfg))
        assert code == 0, out
        assert "[ OK ] config:" in out
        assert "[ OK ] moonraker: connected to" in out and "Klippy ready" in out
        assert "[ OK ] camera:" in out and "1280x720" in out
        assert "[ OK ] predictor:" in out and "p=0.020" in out
        assert "All checks passed" in out
        assert printer.access_token not in out
        assert [r["print_id"] for r in printer.predictor.requests] == ["failwatch-check"]

        printer.camera.mode = "error"
        code, out, _ = await run_cli("check", "--config", str(cfg))
        assert code == 1
        assert "[FAIL] camera: snapshot URL" in out and "HTTP 500" in out
        assert "[FAIL] predictor: not tried" in out


async def test_sigterm_stops_within_two_seconds_and_saves(tmp_path: Path) -> None:
    async with SimPrinter() as printer:
        cfg = config_for(printer, tmp_path / "failwatch.cfg")
        proc = await asyncio.create_subprocess_exec(
            *CLI, "--config", str(cfg), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        try:
            job = await printer.start_print("benchy.gcode")
            assert job is not None
            await printer.predictor.wait_for_requests(5, timeout=20)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 5)
            took = time.monotonic() - started
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0
        assert took < 2.0, f"shutdown took {took:.2f} s"
        state = json.loads((tmp_path / "failwatch" / "state.json").read_text())
        assert state["session"]["print_id"] == job["job_id"]
        assert state["session"]["stats"]["prediction_num"] >= 5
        log = (tmp_path / "logs" / "failwatch.log").read_text()
        assert "failwatch stopped; statistics saved" in log
        assert printer.access_token not in log
        assert os.stat(tmp_path / "logs" / "failwatch.log").st_size > 0
