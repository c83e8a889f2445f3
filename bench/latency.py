"""(b) From the predictor answer that confirms a failure to PAUSE at the emulated Klippy."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from failwatch_moonraker.camera.snapshot import Frame
from failwatch_moonraker.config import load_config
from failwatch_moonraker.core.stats import TemporalStats
from failwatch_moonraker.daemon import Daemon
from failwatch_moonraker.predictors import Prediction
from sim.daemon_config import config_for
from sim.harness import SimPrinter


class TimedLines(list[str]):
    """The emulated Klippy's G-code log, with the time each line arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, line: str) -> None:
        self.times.append(time.perf_counter())
        super().append(line)


class StubCamera:
    """A camera that answers at once: the latency measured is failwatch's, not a camera's."""

    mask = ()
    source = None

    async def frame(self) -> Frame:
        return Frame(await self.snapshot(), None)

    async def snapshot(self) -> bytes:
        return b"\xff\xd8\xff"


class ConfirmingPredictor:
    """Answers with a clear failure and notes when the answer was in hand."""

    name = "stub"

    def __init__(self) -> None:
        self.answered_at = 0.0

    async def predict(self, jpeg: bytes, print_id: str) -> Prediction:
        self.answered_at = time.perf_counter()
        return Prediction(p=5.0)

    async def close(self) -> None:
        pass


async def wait_line(lines: TimedLines, word: str, start: int, timeout: float = 10) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        for i in range(start, len(lines)):
            if lines[i].split()[:1] == [word]:
                return lines.times[i]
        await asyncio.sleep(0.0005)
    raise TimeoutError(f"no {word} at Klippy")


async def measure_latency(trials: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="failwatch-bench-"))
    async with SimPrinter() as printer:
        lines = TimedLines()
        printer.klippy.gcode_lines = lines
        cfg = config_for(printer, workdir / "failwatch.cfg",
                         detection={"safe_frames": 0, "resume_cooldown": 0, "interval": 3600},
                         actions={"on_failure": "pause"}, logging={"level": "WARNING"})
        daemon = Daemon(load_config(cfg))
        predictor = ConfirmingPredictor()
        run_task = asyncio.create_task(daemon.run())
        await asyncio.wait_for(daemon.client.ready.wait(), 15)
        daemon.camera = StubCamera()  # type: ignore[assignment]
        daemon.predictor = predictor
        await printer.start_print("bench.gcode")
        failure_ms: list[float] = []
        noop_ms: list[float] = []
        rtt_ms: list[float] = []
        try:
            for _ in range(trials):
                deadline = time.monotonic() + 10
                while not daemon.can_watch():
                    if time.monotonic() > deadline:
                        raise TimeoutError("daemon did not resume watching")
                    await asyncio.sleep(0.005)
                # an established printer, quiet until now
                daemon.session.stats = TemporalStats(
                    prediction_num=100, prediction_num_lifetime=7200, rolling_mean_long=0.02)
                daemon.session.failure_fired = False
                start = len(lines)
                await daemon.frame()
                arrived = await wait_line(lines, "PAUSE", start)
                failure_ms.append((arrived - predictor.answered_at) * 1000)
                start = len(lines)
                sent = time.perf_counter()
                await daemon.client.call("printer.gcode.script", {"script": "G4 P0"})
                done = time.perf_counter()
                noop_ms.append((await wait_line(lines, "G4", start) - sent) * 1000)
                rtt_ms.append((done - sent) * 1000)
                await daemon.client.call("printer.print.resume")
                await printer.klippy.wait_for_print_state("printing", 5)
        finally:
            daemon.stop()
            await asyncio.wait_for(run_task, 10)
    return {"failure_to_pause_ms": failure_ms, "noop_one_way_ms": noop_ms,
            "noop_round_trip_ms": rtt_ms}
