"""(c) the real daemon process's RSS after start-up and (d) its Moonraker requests per minute.

The daemon runs as installed (``python -m failwatch_moonraker``) against the simulated
printer, one frame a second; Moonraker's own request log is not needed: the daemon
logs each JSON-RPC call it makes at DEBUG level under ``failwatch.rpc``.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sim.daemon_config import config_for
from sim.harness import SimPrinter


def proc_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def proc_cpu_seconds(pid: int) -> float:
    import os

    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def count_calls(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if " failwatch.rpc: " in line]


async def measure_watching(seconds: float) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="failwatch-bench-"))
    log = workdir / "failwatch.log"
    async with SimPrinter() as printer:
        cfg = config_for(printer, workdir / "failwatch.cfg", detection={"interval": 1.0},
                         logging={"level": "DEBUG", "path": str(log)})
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "failwatch_moonraker", "--config", str(cfg),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        try:
            await printer.start_print("bench.gcode")
            await printer.predictor.wait_for_requests(3, timeout=20)
            rss = proc_rss_mb(proc.pid)
            start_calls = len(count_calls(log))
            cpu0, t0 = proc_cpu_seconds(proc.pid), time.monotonic()
            await asyncio.sleep(seconds)
            cpu = proc_cpu_seconds(proc.pid) - cpu0
            elapsed = time.monotonic() - t0
            calls = count_calls(log)
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 10)
    during = len(calls) - start_calls
    return {
        "rss_startup_mb": rss,
        "seconds": elapsed,
        "requests": len(calls),
        "start_requests": start_calls,
        "requests_per_minute": during / elapsed * 60,
        "cpu_percent": cpu / elapsed * 100,
        "frames": len(printer.predictor.requests),
    }
