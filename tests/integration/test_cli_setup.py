"""Setting failwatch up as a new user does: the command line and `check`'s advice."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import pytest

from sim.cli_run import CLI, run_cli
from sim.daemon_config import config_for, render
from sim.harness import SimPrinter
from sim.waits import wait_until

pytestmark = pytest.mark.usefixtures("require_moonraker")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def example_like_config(tmp_path: Path, port: int, unix_socket: str) -> Path:
    """What install.sh leaves: the example's placeholders, this host's paths."""
    cfg = tmp_path / "failwatch.cfg"
    cfg.write_text(render({
        "moonraker": {"url": f"ws://127.0.0.1:{port}/websocket", "unix_socket": unix_socket},
        "camera": {"snapshot_url": f"http://127.0.0.1:{port}/webcam/?action=snapshot",
                   "timeout": 1.0},
        "predictor": {"serial_no": "YOUR-PRINTER-SERIAL", "access_token": "YOUR-ACCESS-TOKEN"},
        "state": {"path": str(tmp_path / "state.json")},
        "logging": {"path": str(tmp_path / "failwatch.log")},
    }))
    return cfg


async def test_config_option_before_or_after_the_subcommand(tmp_path: Path) -> None:
    async with SimPrinter() as printer:
        cfg = str(config_for(printer, tmp_path / "failwatch.cfg"))
        for args in (("-c", cfg, "check"), ("check", "-c", cfg), ("--config", cfg, "check")):
            code, out, err = await run_cli(*args)
            assert code == 0, f"{args}: {out}{err}"
            assert f"[ OK ] config: {cfg} is valid" in out
    code, _, err = await run_cli("-c", str(tmp_path / "nope.cfg"), "run")
    assert code == 2 and str(tmp_path / "nope.cfg") in err


async def test_check_says_what_goes_instead_of_the_placeholders(tmp_path: Path) -> None:
    cfg = example_like_config(tmp_path, free_port(), str(tmp_path / "none.sock"))
    code, out, _ = await run_cli("check", "-c", str(cfg))
    assert code == 1
    lines = out.splitlines()
    assert lines[1].startswith(
        "[FAIL] predictor credentials: [predictor] serial_no and [predictor] access_token are "
        "still the placeholders of the example config, so the predictor refuses every "
        "snapshot. Put there serial_no: the serial number your printer is registered with")
    assert "backend: obico_ml_api" in lines[1] and "backend: printwatch" in lines[1]
    assert "[FAIL] predictor: not tried: the credentials are the example's placeholders" in out


async def test_daemon_logs_the_placeholders_at_start(tmp_path: Path) -> None:
    cfg = example_like_config(tmp_path, free_port(), str(tmp_path / "none.sock"))
    log = tmp_path / "failwatch.log"
    proc = await asyncio.create_subprocess_exec(
        *CLI, "-c", str(cfg), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, env={**os.environ, "FAILWATCH_NO_GUARDIAN": "1"})
    try:
        await wait_until(lambda: log.exists() and "still the placeholders" in log.read_text(),
                         15, "the placeholder line in the log")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
    line = next(x for x in log.read_text().splitlines() if "still the placeholders" in x)
    assert " ERROR failwatch: config: [predictor] serial_no and [predictor] access_token" in line


async def test_check_after_connection_refused_says_what_to_do(tmp_path: Path) -> None:
    port = free_port()
    cfg = example_like_config(tmp_path, port, str(tmp_path / "none.sock"))
    code, out, _ = await run_cli("check", "-c", str(cfg))
    assert code == 1
    line = next(x for x in out.splitlines() if x.startswith("[FAIL] moonraker:"))
    assert line == (
        f"[FAIL] moonraker: connection refused at ws://127.0.0.1:{port}/websocket ([moonraker] "
        f"url in {cfg}): nothing listens on 127.0.0.1:{port}. Moonraker is not running on "
        f"this host (its socket {tmp_path / 'none.sock'} does not answer either): start it "
        "with 'sudo systemctl start moonraker' (see 'systemctl status moonraker' and "
        "moonraker.log if it does not stay up), then run check again.")

    async with SimPrinter() as printer:  # Moonraker runs, but elsewhere than the url says
        cfg = example_like_config(tmp_path, port, str(printer.mr.unix_socket))
        code, out, _ = await run_cli("check", "-c", str(cfg))
    assert code == 1
    line = next(x for x in out.splitlines() if x.startswith("[FAIL] moonraker:"))
    assert f"Moonraker is running (its socket {printer.mr.unix_socket} answers)" in line
    assert "so the url is wrong: set [moonraker] url to the port in moonraker.conf" in line
