"""``make demo``: failwatch watching a simulated printer through the real Moonraker.

The printer (an emulated Klippy), the webcam and the failure predictor are
simulated; Moonraker is the real one from PyPI and failwatch runs exactly
as installed, as its own process with its own config. The predictor sees a
clean print for a while, then "spaghetti"; failwatch warns, then pauses the
print and turns the heaters off, and the console shows why.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

from sim.daemon_config import config_for, seed_established_printer
from sim.harness import SimPrinter

BANNER = """\
==============================================================================
 failwatch-moonraker demo
 SIMULATED: the printer (an emulated Klippy), the webcam and the predictor.
 REAL: Moonraker {moonraker} and the failwatch daemon, as installed on a printer.
==============================================================================
"""


class Narrator:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def say(self, who: str, text: str) -> None:
        print(f"{time.monotonic() - self.t0:6.1f}s [{who:9}] {text}", flush=True)


async def follow(stream: asyncio.StreamReader, narrator: Narrator) -> None:
    while line := await stream.readline():
        text = line.decode(errors="replace").rstrip()
        # "2026-11-22 05:00:00,123 INFO failwatch: message" -> "INFO message"
        parts = text.split(" ", 4)
        narrator.say("failwatch", f"{parts[2]} {parts[4]}" if len(parts) == 5 else text)


async def watch_console(printer: SimPrinter, narrator: Narrator, stop: asyncio.Event) -> None:
    seen = 0
    while not stop.is_set():
        lines = printer.klippy.console
        for line in lines[seen:]:
            narrator.say("console", line)
        seen = len(lines)
        await asyncio.sleep(0.1)


async def demo(clean_frames: int, interval: float, timeout: float) -> int:
    narrator = Narrator()
    workdir = Path(tempfile.mkdtemp(prefix="failwatch-demo-"))

    def score(frame: int, print_id: str) -> float:
        p = 0.02 if frame < clean_frames else 3.0
        label = "clean" if p < 1 else "SPAGHETTI"
        narrator.say("predictor", f"frame {frame + 1} of print {print_id}: p={p:.2f} ({label})")
        return p

    async with SimPrinter() as printer:
        print(BANNER.format(moonraker="0.11.0 (real, from PyPI)"), flush=True)
        printer.predictor.score = score
        cfg = config_for(printer, workdir / "failwatch.cfg",
                         detection={"interval": interval, "safe_frames": 10},
                         logging={"level": "INFO", "path": str(workdir / "failwatch.log")})
        seed_established_printer(workdir)
        narrator.say("demo", f"Moonraker at {printer.url}; config {cfg}")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "failwatch_moonraker", "--config", str(cfg),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        assert proc.stderr is not None
        stop = asyncio.Event()
        tasks = [asyncio.create_task(follow(proc.stderr, narrator)),
                 asyncio.create_task(watch_console(printer, narrator, stop))]
        try:
            await printer.moonraker_call("printer.gcode.script",
                                         {"script": "M104 S215\nM140 S60"})
            await asyncio.sleep(1.0)
            narrator.say("demo", "starting print demo_benchy.gcode (hotend 215 C, bed 60 C)")
            await printer.start_print("demo_benchy.gcode")
            try:
                await printer.klippy.wait_for_gcode(r"^PAUSE$", timeout=timeout)
                await printer.klippy.wait_for_print_state("paused", timeout=10)
                await asyncio.sleep(1.0)
            except TimeoutError:
                narrator.say("demo", f"FAILED: the print was not paused within {timeout:g} s")
                return 1
            status = printer.klippy.status
            narrator.say("demo", f"print state: {status['print_stats']['state']}; hotend "
                         f"target {status['extruder']['target']:g} C, bed target "
                         f"{status['heater_bed']['target']:g} C")
            narrator.say("demo", "failwatch paused the failing print. Demo complete.")
            return 0
        finally:
            stop.set()
            if proc.returncode is None:
                proc.terminate()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(proc.wait(), 5)
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean-frames", type=int, default=15,
                        help="frames the predictor sees as clean before the failure")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between frames")
    parser.add_argument("--timeout", type=float, default=90.0)
    args = parser.parse_args()
    return asyncio.run(demo(args.clean_frames, args.interval, args.timeout))


if __name__ == "__main__":
    raise SystemExit(main())
