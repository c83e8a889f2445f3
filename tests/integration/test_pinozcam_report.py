"""What a user reads about the local engine: ``check``, FAILWATCH_STATUS, the status."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from failwatch_moonraker.config import auto_engine_cpus
from sim.cli_run import run_cli
from sim.daemon_config import config_for
from sim.drawn import part_jpeg
from sim.harness import SimPrinter
from sim.macros import install_macros
from sim.waits import running_daemon, wait_until

pytestmark = pytest.mark.usefixtures("require_moonraker")

LOCAL = {"backend": "pinozcam", "timeout": 60}


async def test_check_reports_the_engine(tmp_path: Path) -> None:
    async with SimPrinter() as printer:
        printer.camera.jpeg = part_jpeg()
        cfg = config_for(printer, tmp_path / "failwatch.cfg", predictor=LOCAL)
        code, out, _ = await run_cli("check", "--config", str(cfg), timeout=120)
    assert code == 0, out
    assert "[ OK ] predictor: the local pinozcam engine scored the snapshot p=0.000" in out
    engine = next(line for line in out.splitlines() if line.startswith("[ OK ] engine:"))
    assert re.search(r"pinozcam-runtime 1\.\d+\.\d+, runner \S+/nozcam_daemon\.\w+\.static, "
                     r"model \S+/nozcam-cpu\.pte; started in \d+\.\d\d s, \d+ ms/frame, "
                     r"RSS \d+ MB, nice 10, CPUs ", engine), engine
    # cpus: auto, the default: every CPU but the lowest (a single-CPU host: all)
    auto = auto_engine_cpus(os.sched_getaffinity(0))
    assert engine.endswith(f"CPUs {','.join(map(str, auto)) or 'all'}"), engine


async def test_status_macro_and_database_show_the_engine(tmp_path: Path) -> None:
    async with SimPrinter() as printer:
        install_macros(printer.klippy)
        printer.camera.jpeg = part_jpeg()
        cfg = config_for(printer, tmp_path / "failwatch.cfg", predictor=LOCAL,
                         detection={"interval": 1.0})
        async with running_daemon(cfg) as daemon:
            start = len(printer.klippy.console)
            await printer.moonraker_call("printer.gcode.script", {"script": "FAILWATCH_STATUS"})
            idle = await printer.klippy.wait_for_console(r"^failwatch: ", timeout=10,
                                                         start=start)
            assert "engine pinozcam-runtime, stopped" in idle
            await printer.start_print("benchy.gcode", timeout=20)
            seen = printer.camera.requests
            await wait_until(lambda: printer.camera.requests >= seen + 2, 60, "2 frames")
            start = len(printer.klippy.console)
            await printer.moonraker_call("printer.gcode.script", {"script": "FAILWATCH_STATUS"})
            line = await printer.klippy.wait_for_console(r"^failwatch: ", timeout=10,
                                                         start=start)
            assert re.search(r"engine pinozcam-runtime 1\.\d+\.\d+, running, started in "
                             r"\d+\.\d\d s, \d+ ms/frame, RSS \d+ MB", line), line

            # What failwatch posts to Moonraker's database (namespace failwatch, key
            # status) on changes and once a minute carries the same facts.
            engine = daemon.status_dict()["engine"]
            assert engine["package"] == "pinozcam-runtime"
            assert engine["version"] and engine["model"] and engine["runner"]
            assert isinstance(engine["rss_mb"], float) and engine["rss_mb"] > 50
            assert isinstance(engine["last_ms"], float) and engine["startup_s"]
