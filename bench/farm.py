"""(e) Farm mode: N printers at one frame a second each, in one daemon process.

Three processes: the fakes (``bench/farm_fakes.py``: minimal Moonraker websockets,
cameras, one predictor), the farm daemon (``bench/farm_daemon.py``, the real
:class:`~failwatch_moonraker.farm.Farm`), and this driver, which reads the daemon's
CPU time and RSS from /proc and asks it for the lateness of its frames against
their schedule (``Daemon.lateness``) over the measured window.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.farm_fakes import ACCESS_TOKEN, SERIAL_NO
from bench.watching import proc_cpu_seconds, proc_rss_mb

HERE = Path(__file__).resolve().parent.parent


def farm_config(path: Path, base: str, predict_url: str, printers: int) -> Path:
    lines = [
        "[predictor]", f"url: {predict_url}", f"serial_no: {SERIAL_NO}",
        f"access_token: {ACCESS_TOKEN}", "",
        "[detection]", "interval: 1.0", "",
        "[state]", f"path: {path.parent / 'state' / 'state.json'}", "",
        "[snapshots]", "enabled: false", "",
        "[logging]", f"path: {path.parent / 'failwatch.log'}", "level: INFO", "",
    ]
    for i in range(printers):
        lines += [f"[printer p{i:02d}]",
                  f"moonraker_url: {base.replace('http', 'ws')}/printer/{i}/websocket",
                  f"camera_snapshot_url: {base}/printer/{i}/snapshot", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


async def _line(stream: asyncio.StreamReader, timeout: float) -> str:
    return (await asyncio.wait_for(stream.readline(), timeout)).decode().strip()


async def measure_farm(printers: int, seconds: float, latency: float) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="failwatch-bench-farm-"))
    fakes = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.farm_fakes", "--printers", str(printers),
        "--latency", str(latency), cwd=HERE, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE)
    assert fakes.stdin is not None and fakes.stdout is not None
    daemon = None
    try:
        base, predict_url = (await _line(fakes.stdout, 30)).split()
        cfg = farm_config(workdir / "failwatch.cfg", base, predict_url, printers)
        daemon = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.farm_daemon", str(cfg), cwd=HERE,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert daemon.stdin is not None and daemon.stdout is not None
        started = time.monotonic()
        assert await _line(daemon.stdout, 60) == "ready"
        startup = time.monotonic() - started
        await asyncio.sleep(3.0)  # settle: connection pools, allocator
        daemon.stdin.write(b"reset\n")
        await daemon.stdin.drain()
        cpu0, t0 = proc_cpu_seconds(daemon.pid), time.monotonic()
        rss_samples = []
        while time.monotonic() - t0 < seconds:
            await asyncio.sleep(1.0)
            rss_samples.append(proc_rss_mb(daemon.pid))
        cpu = proc_cpu_seconds(daemon.pid) - cpu0
        elapsed = time.monotonic() - t0
        daemon.stdin.write(b"report\n")
        await daemon.stdin.drain()
        report = json.loads(await _line(daemon.stdout, 30))
        daemon.stdin.write(b"stop\n")
        await daemon.stdin.drain()
        await asyncio.wait_for(daemon.wait(), 30)
    finally:
        if daemon is not None and daemon.returncode is None:
            daemon.kill()
            await daemon.wait()
        fakes.stdin.close()
        try:
            await asyncio.wait_for(fakes.wait(), 10)
        except asyncio.TimeoutError:
            fakes.kill()
            await fakes.wait()
    frames = report["frames"]
    return {
        "printers": printers,
        "seconds": elapsed,
        "startup_s": startup,
        "cpu_percent": cpu / elapsed * 100,
        "rss_mb": max(rss_samples),
        "lateness_ms": [x * 1000 for x in report["lateness"]],
        "frames": sum(frames.values()),
        "min_frames": min(frames.values()),
        "max_frames": max(frames.values()),
        "restarts": report["restarts"],
    }
