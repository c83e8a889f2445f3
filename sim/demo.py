"""``make demo``: failwatch watching a simulated printer through the real Moonraker.

By default the frames are scored by PiNozCam's real failure detector, run on this
host (``backend: pinozcam``, the pinozcam-runtime package from PyPI): the camera
shows a drawn print, then a drawn tangle of filament, and the real model's answer
pauses the print. Only the printer (an emulated Klippy) and the camera are
simulated. ``--remote`` (``make demo-remote``) scores them with a simulated
remote predictor instead (Obico's API), whose scores are scripted.

Moonraker is the real one from PyPI and failwatch runs exactly as installed, as
its own process with its own config; it warns, then pauses the print and turns
the heaters off, and the console shows why.
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
 SIMULATED: {simulated}.
 REAL: Moonraker {moonraker} and the failwatch daemon, as installed on a printer{real}.
==============================================================================
"""
REMOTE = {"simulated": "the printer (an emulated Klippy), the webcam and the predictor",
          "real": ""}
LOCAL = {"simulated": "the printer (an emulated Klippy) and the webcam, which shows "
                      "drawn pictures",
         "real": ",\n       and PiNozCam's failure detector (pinozcam-runtime from PyPI, "
                 "AGPL-3.0,\n       PiNozCam's, not part of failwatch) scoring every frame "
                 "on this host"}
#: PiNozCam's own "Medium" rule as failwatch's buffer policy (see README), with the
#: demo's fast frames: 2 alarming frames of the last 24 pause.
LOCAL_DETECTION = {"policy": "buffer", "buffer_confidence": 1.0, "buffer_length": 24,
                   "buffer_percent": 7, "buffer_warning_percent": 4, "safe_frames": 20}


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


async def show_pictures(printer: SimPrinter, narrator: Narrator, clean_frames: int,
                        stop: asyncio.Event) -> None:
    """The camera: a drawn print, then (from frame ``clean_frames``) a drawn tangle."""
    from sim.drawn import part_jpeg, spaghetti_jpeg

    camera = printer.camera
    camera.jpeg = part_jpeg()
    start, seen = camera.requests, 0
    while not stop.is_set():
        frames = camera.requests - start
        if frames > seen:
            seen = frames
            what = "drawn printed part" if frames <= clean_frames else "drawn SPAGHETTI"
            narrator.say("camera", f"frame {frames}: {what}")
            if frames == clean_frames:
                camera.jpeg = spaghetti_jpeg()
                narrator.say("camera", "the print has come loose: from now on the camera "
                             "shows a drawn tangle of filament")
        await asyncio.sleep(0.05)


async def demo(clean_frames: int, interval: float, timeout: float, remote: bool,
               keep: bool = False) -> int:
    narrator = Narrator()
    workdir = Path(tempfile.mkdtemp(prefix="failwatch-demo-"))

    def score(frame: int, print_id: str) -> float:
        p = 0.02 if frame < clean_frames else 3.0
        label = "clean" if p < 1 else "SPAGHETTI: three boxes"
        if frame == clean_frames:
            narrator.say("predictor", "p is the sum of the confidences of every box the "
                         "model sees (Obico's rule), so three confident boxes make p=3")
        narrator.say("predictor", f"frame {frame + 1} of print {print_id}: p={p:.2f} ({label})")
        return p

    async with SimPrinter() as printer:
        print(BANNER.format(moonraker="0.11.0 (real, from PyPI)",
                            **(REMOTE if remote else LOCAL)), flush=True)
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        if remote:
            printer.predictor.score = score
            predictor: dict[str, object] = {}
            detection: dict[str, object] = {"interval": interval, "safe_frames": 10}
        else:
            from failwatch_moonraker.predictors.local.pinozcam import find_runtime

            runtime = find_runtime()  # says how to install it when it is missing
            narrator.say("demo", f"local model: {runtime.module} {runtime.version} "
                         f"({runtime.model})")
            predictor = {"backend": "pinozcam", "timeout": 60}
            detection = {"interval": interval, **LOCAL_DETECTION}
            tasks.append(asyncio.create_task(show_pictures(printer, narrator, clean_frames,
                                                           stop)))
        cfg = config_for(printer, workdir / "failwatch.cfg", predictor=predictor,
                         detection=detection,
                         logging={"level": "INFO", "path": str(workdir / "failwatch.log")})
        seed_established_printer(workdir)
        narrator.say("demo", f"Moonraker at {printer.url}; config {cfg}")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "failwatch_moonraker", "--config", str(cfg),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        assert proc.stderr is not None
        tasks += [asyncio.create_task(follow(proc.stderr, narrator)),
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
            narrator.say("demo", "failwatch paused the failing print.")
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
            if keep:
                narrator.say("demo", f"done; the config, log and statistics are kept in "
                             f"{workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
                narrator.say("demo", "done; its temporary config, log and statistics were "
                             "removed (python -m sim.demo --keep keeps them)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--remote", action="store_true",
                        help="score the frames with a simulated remote predictor (Obico's "
                             "API) instead of PiNozCam's real model on this host")
    parser.add_argument("--clean-frames", type=int, default=None,
                        help="frames of a clean print before the failure (default: 15 "
                             "remote, 30 local)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between frames")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--keep", action="store_true",
                        help="keep the demo's config, log and state file afterwards")
    args = parser.parse_args()
    clean = args.clean_frames if args.clean_frames is not None else 15 if args.remote else 30
    try:
        return asyncio.run(demo(clean, args.interval, args.timeout, args.remote, args.keep))
    except Exception as exc:  # e.g. the local engine is not installed: say so, briefly
        from failwatch_moonraker.predictors.local.engine import EngineMissing

        if isinstance(exc, EngineMissing):
            print(f"demo: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    raise SystemExit(main())
