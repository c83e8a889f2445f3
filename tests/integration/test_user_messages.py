"""What a Klipper user reads: console lines, `check`, the macros when failwatch is gone.

Through the real Moonraker with the emulated Klippy running failwatch_macros.cfg
(sim/macros.py); the daemon runs in-process or, where its end matters, as the
real command-line process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from failwatch_moonraker.daemon import Daemon
from sim.cli_run import CLI, run_cli
from sim.daemon_config import config_for, seed_established_printer
from sim.harness import SimPrinter
from sim.macros import install_macros
from sim.waits import running_daemon, wait_until

pytestmark = pytest.mark.usefixtures("require_moonraker")

STATE = "gcode_macro _FAILWATCH_STATE"
NOT_RUNNING = ("!! failwatch is not running or not connected to Moonraker: nothing was "
               "changed. Start it with: sudo systemctl start failwatch")
CAM_PASSWORD = "campw-7d1e55"


def camera_with_password(printer: SimPrinter) -> str:
    url = printer.camera.url
    assert url.startswith("http://")
    return url.replace("http://", f"http://viewer:{CAM_PASSWORD}@", 1)


async def press(printer: SimPrinter, macro: str, pattern: str, timeout: float = 5.0) -> str:
    """Run a macro as a Mainsail button does; the console line that answers."""
    start = len(printer.klippy.console)
    with contextlib.suppress(Exception):  # a G-code error is answered on the console too
        await printer.moonraker_call("printer.gcode.script", {"script": macro})
    return await printer.klippy.wait_for_console(pattern, timeout=timeout, start=start)


@contextlib.asynccontextmanager
async def watched(tmp_path: Path, printer: SimPrinter,
                  **overrides: Any) -> AsyncIterator[Daemon]:
    cfg = config_for(printer, tmp_path / "failwatch.cfg", **overrides)
    seed_established_printer(tmp_path)
    async with running_daemon(cfg, stop_timeout=5) as daemon:  # a user waits 5 s at most
        await wait_until(lambda: printer.klippy.status[STATE]["online"] is True, 5, "online")
        yield daemon


def guardians_of(pid: int) -> list[int]:
    """The daemon's child processes that are its guardian (`offline --guard`)."""
    try:
        kids = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    found = []
    for kid in kids:
        with contextlib.suppress(OSError):
            if b"--guard" in Path(f"/proc/{kid}/cmdline").read_bytes().split(b"\0"):
                found.append(kid)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.contextmanager
def reaped(pids: list[int]) -> Iterator[None]:
    """Processes this test started indirectly are gone when it ends."""
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def start_cli_daemon(printer: SimPrinter, cfg: Path,
                           env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        *CLI, "-c", str(cfg), "run",  # -c before the subcommand (issue 10, item 17)
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, **(env or {})})
    try:
        await wait_until(lambda: printer.klippy.status[STATE]["online"] is True, 20,
                         "failwatch online")
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return proc


# -- item 8: "failwatch is not running", however the daemon ended ------------------------


async def test_sigkilled_daemon_leaves_the_macros_saying_not_running(tmp_path: Path) -> None:
    async with SimPrinter() as printer:
        install_macros(printer.klippy)
        cfg = config_for(printer, tmp_path / "failwatch.cfg")
        proc = await start_cli_daemon(printer, cfg)
        guardians = guardians_of(proc.pid)
        with reaped(guardians):
            assert len(guardians) == 1, "run starts one guardian process"
            line = await press(printer, "FAILWATCH_STATUS", r"failwatch")
            assert line.startswith("failwatch: enabled, idle")
            proc.send_signal(signal.SIGKILL)  # as the OOM killer does
            await proc.wait()
            await wait_until(lambda: printer.klippy.status[STATE]["online"] is False, 15,
                             "the guardian marked failwatch offline")
            line = await press(printer, "FAILWATCH_STATUS", r"failwatch")
            assert line == NOT_RUNNING
            await wait_until(lambda: not alive(guardians[0]), 10, "guardian exits")


async def test_offline_command_is_what_systemd_runs_after_a_kill(tmp_path: Path) -> None:
    async with SimPrinter() as printer:
        install_macros(printer.klippy)
        cfg = config_for(printer, tmp_path / "failwatch.cfg")
        # Under the systemd unit there is no guardian: ExecStopPost does its job.
        proc = await start_cli_daemon(printer, cfg, env={"FAILWATCH_NO_GUARDIAN": "1"})
        assert guardians_of(proc.pid) == []
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await asyncio.sleep(1.0)
        assert printer.klippy.status[STATE]["online"] is True  # the defect, without help
        code, out, err = await run_cli("offline", "-c", str(cfg))  # ExecStopPost's command
        assert code == 0, out + err
        assert out.strip() == (f"failwatch offline: the FAILWATCH_* macros on {printer.url} "
                               "now say failwatch is not running")
        line = await press(printer, "FAILWATCH_ENABLE", r"failwatch")
        assert line == NOT_RUNNING


async def test_offline_while_klipper_is_heating_says_it_waits(tmp_path: Path) -> None:
    async with SimPrinter() as printer:
        install_macros(printer.klippy)
        cfg = config_for(printer, tmp_path / "failwatch.cfg")
        proc = await start_cli_daemon(printer, cfg, env={"FAILWATCH_NO_GUARDIAN": "1"})
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        rate = printer.klippy.heat_fraction
        printer.klippy.heat_fraction = 0.0  # M109 holds the G-code lock until let go
        heating = asyncio.create_task(
            printer.moonraker_call("printer.gcode.script", {"script": "M109 S200"}))
        try:
            await asyncio.sleep(0.5)
            code, out, err = await run_cli("offline", "-c", str(cfg))
            assert code == 0, out + err
            assert out.strip() == (
                f"failwatch offline: Klipper on {printer.url} is busy (heating, for example): "
                "the macros say failwatch is not running as soon as it is done")
            assert printer.klippy.status[STATE]["online"] is True
        finally:
            printer.klippy.heat_fraction = rate
            await asyncio.wait_for(heating, 30)
        await wait_until(lambda: printer.klippy.status[STATE]["online"] is False, 10,
                         "the queued line ran after the heating")
        line = await press(printer, "FAILWATCH_STATUS", r"failwatch")
        assert line == NOT_RUNNING


async def test_offline_leaves_a_running_daemon_alone(tmp_path: Path) -> None:
    async with SimPrinter() as printer:
        install_macros(printer.klippy)
        async with watched(tmp_path, printer):
            code, out, err = await run_cli("offline", "-c", str(tmp_path / "failwatch.cfg"))
            assert code == 0, out + err
            assert "failwatch is connected to" in out and "left online" in out
            assert printer.klippy.status[STATE]["online"] is True
            line = await press(printer, "FAILWATCH_STATUS", r"failwatch")
            assert line.startswith("failwatch: enabled")


async def test_clean_stop_by_hand_needs_no_guardian_call(tmp_path: Path) -> None:
    async with SimPrinter() as printer:
        install_macros(printer.klippy)
        cfg = config_for(printer, tmp_path / "failwatch.cfg")
        proc = await start_cli_daemon(printer, cfg)
        guardians = guardians_of(proc.pid)
        with reaped(guardians):
            proc.send_signal(signal.SIGINT)  # Ctrl-C in the terminal
            assert await asyncio.wait_for(proc.wait(), 10) == 0
            assert printer.klippy.status[STATE]["online"] is False  # the daemon said so
            await wait_until(lambda: not any(alive(g) for g in guardians), 5,
                             "the guardian ends with the daemon")
        log = (tmp_path / "logs" / "failwatch.log").read_text()
        assert "failwatch stopped; statistics saved" in log


# -- item 14: secrets never reach the console or check ----------------------------------


async def test_a_401_body_echoing_the_token_is_scrubbed_everywhere(tmp_path: Path) -> None:
    async with SimPrinter() as printer:
        install_macros(printer.klippy)
        token = printer.access_token
        printer.predictor.mode = "401_echo"
        async with watched(tmp_path, printer):
            line = await press(printer, "FAILWATCH_TEST", r"^failwatch: test", timeout=10)
            assert line.startswith("failwatch: test: snapshot OK")
            assert "refused the credentials (HTTP 401)" in line
            assert "access_token=(hidden)" in line
            await printer.start_print("benchy.gcode")
            line = await printer.klippy.wait_for_console(r"^!! failwatch: the predictor",
                                                         timeout=10)
            assert "Check [predictor] serial_no and access_token" in line
            console = "\n".join(printer.klippy.console)
            assert token not in console
        code, out, _ = await run_cli("check", "-c", str(tmp_path / "failwatch.cfg"))
        assert code == 1
        assert "[FAIL] predictor: the predictor refused the credentials (HTTP 401)" in out
        assert "access_token=***" in out and token not in out


async def test_camera_password_is_hidden_in_status_test_and_check(tmp_path: Path) -> None:
    async with SimPrinter() as printer:
        install_macros(printer.klippy)
        url = camera_with_password(printer)
        async with watched(tmp_path, printer, camera={"snapshot_url": url}):
            line = await press(printer, "FAILWATCH_STATUS", r"^failwatch: ")
            assert line.endswith("camera " + url.replace(CAM_PASSWORD, "(hidden)"))
            printer.camera.mode = "error"
            line = await press(printer, "FAILWATCH_TEST", r"^failwatch: test", timeout=10)
            assert line.startswith("failwatch: test: no snapshot: snapshot URL http://viewer:"
                                   "(hidden)@127.0.0.1")
            assert CAM_PASSWORD not in "\n".join(printer.klippy.console)
        cfg = str(tmp_path / "failwatch.cfg")
        code, out, _ = await run_cli("check", "-c", cfg)
        assert code == 1
        assert "[FAIL] camera: snapshot URL http://viewer:***@127.0.0.1" in out
        printer.camera.mode = "ok"
        code, out, _ = await run_cli("check", "--config", cfg)
        assert "[ OK ] camera:" in out and "from http://viewer:***@127.0.0.1" in out
        assert CAM_PASSWORD not in out


# -- items 15 and 18: what the macros echo ---------------------------------------------


async def test_unknown_command_is_cut_on_console_and_log(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with SimPrinter() as printer:
        install_macros(printer.klippy)
        async with watched(tmp_path, printer):
            line = await press(printer, "_FAILWATCH_CALL CMD=" + "x" * 100_000, r"failwatch",
                               timeout=10)
        assert line.startswith("!! failwatch: unknown command 'xxxx")
        assert "(100000 characters), allowed: status, enable" in line  # ";" is "," on the console
        assert len(line) < 300
        refused = [r.getMessage() for r in caplog.records if "command refused" in r.getMessage()]
        assert refused and all(len(m) < 300 for m in refused)


async def test_sensitivity_with_a_space_reaches_failwatch_quoted(tmp_path: Path) -> None:
    async with SimPrinter() as printer:
        install_macros(printer.klippy)
        async with watched(tmp_path, printer) as daemon:
            line = await press(printer, 'FAILWATCH_SENSITIVITY VALUE="1 2"', r"failwatch|Malformed")
            assert line == ("!! failwatch: FAILWATCH_SENSITIVITY VALUE must be a number from 0.1 "
                            "to 5 (1 = Obico's default, higher pauses sooner), got '1 2', "
                            "nothing changed")
            line = await press(printer, "FAILWATCH_SENSITIVITY VALUE='1\"2'", r"failwatch|Malfo")
            assert line.startswith("!! failwatch: FAILWATCH_SENSITIVITY VALUE must be")
            line = await press(printer, "FAILWATCH_SENSITIVITY VALUE=1.5", r"failwatch")
            assert line == "failwatch: sensitivity 1.5 (was 1), kept across restarts"
            assert daemon.session.params.policy.sensitivity == 1.5
