"""Farm mode from the command line: ``check`` per printer, and the daemon run path."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import pytest

from sim.cli_run import CLI, run_cli
from sim.farm_config import farm_config_for
from sim.harness import SimPrinter
from sim.ml_api import FakeMLAPI

pytestmark = pytest.mark.usefixtures("require_moonraker")





async def test_check_every_printer(tmp_path: Path) -> None:
    async with SimPrinter() as a, SimPrinter() as b, FakeMLAPI(token="ml-tok") as ml:
        b.camera.mode = "error"
        cfg = farm_config_for({"alpha": a, "beta": b}, tmp_path / "failwatch.cfg", per_printer={
            "alpha": {"predictor_backend": "obico_ml_api", "predictor_url": ml.url,
                      "predictor_access_token": "ml-tok", "predictor_image_bind": "127.0.0.1",
                      "predictor_image_port": 0}})
        code, out, _ = await run_cli("check", "--config", str(cfg))
    assert code == 1, out
    alpha, beta = out.split("== [printer beta] ==")
    assert alpha.startswith("== [printer alpha] ==")
    assert f"[ OK ] predictor health: {ml.url} says 'ok'" in alpha
    assert "[ OK ] predictor:" in alpha and "All checks passed" in alpha
    assert "[FAIL] camera:" in beta and "[FAIL] predictor: not tried" in beta
    assert "Farm: 1 of 2 printers passed every check; failing: beta." in out
    assert "ml-tok" not in out and a.access_token not in out
    # the ML server fetched the check's frame from failwatch's one-time URL
    assert [r["download_status"] for r in ml.requests] == [200]


async def test_run_farm_and_stop_it(tmp_path: Path) -> None:
    async with SimPrinter() as a, SimPrinter() as b:
        cfg = farm_config_for({"alpha": a, "beta": b}, tmp_path / "failwatch.cfg",
                              detection={"interval": 0.2, "safe_frames": 3})
        proc = await asyncio.create_subprocess_exec(
            *CLI, "--config", str(cfg), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        try:
            jobs = await asyncio.gather(a.start_print("a.gcode"), b.start_print("b.gcode"))
            await asyncio.gather(a.predictor.wait_for_requests(5, timeout=20),
                                 b.predictor.wait_for_requests(5, timeout=20))
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 5)
            took = time.monotonic() - started
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0
    assert took < 3.0, f"shutdown took {took:.2f} s"
    for name, job in zip(("alpha", "beta"), jobs, strict=True):
        assert job is not None
        state = json.loads((tmp_path / "failwatch" / f"state-{name}.json").read_text())
        assert state["session"]["print_id"] == job["job_id"]
    log = (tmp_path / "logs" / "failwatch.log").read_text()
    assert "farm: watching 2 printers: alpha, beta" in log
    assert "[alpha] watching print a.gcode" in log and "[beta] watching print b.gcode" in log
    assert "[alpha] failwatch stopped" in log and "[beta] failwatch stopped" in log
    assert a.access_token not in log and b.access_token not in log
