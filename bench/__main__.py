"""``make bench``: the figures the README reports.

(a) daemon CPU per frame, pass-through 1280x720 JPEG, network waits excluded;
(b) latency from the predictor answer that confirms a failure to PAUSE at the
    emulated Klippy through the real Moonraker, next to Moonraker's own trip
    for a no-op script measured in the same run;
(c) RSS after start-up and after 10,000 frames, and the growth;
(d) Moonraker requests per minute while a print is watched;
(e) ``tune``'s vectorised search against the plain loop, frame decisions per second;
(f) farm mode: 50 printers at 1 frame/s in one daemon process, its CPU share, RSS
    and the lateness of frames against their schedule;
(g) local engine (PiNozCam's real runner): ms per frame on both cores and pinned to
    one, engine RSS, daemon-side RSS and CPU per frame (decode + letterbox);
(h) Klipper's share: a nice-0 stand-in for Klippy waking every 10 ms, its lateness
    idle, with the engine scoring back to back at the defaults (nice 10, every CPU
    but CPU 0), and on every CPU at nice 10 and at nice 0.
(i) Obico-size ONNX engine (backend onnx): ms per frame at 1 and 2 threads, worker
    RSS, load time, a Klipper stand-in's lateness, beside the PiNozCam engine.

``--only ae`` runs just those sections. ``--readme README.md`` (``make bench-readme``)
also writes the output into the README's figures block, so that the README quotes
the latest run, once; plain ``make bench`` never touches a tracked file (a dirty
checkout would stop Moonraker's update manager).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import io
import json
import logging
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from bench.farm import measure_farm
from bench.latency import measure_latency
from bench.local_engine import measure_klipper_share, measure_local, print_local, print_share
from bench.tune import measure_tune
from bench.watching import measure_watching

TARGETS = {
    "a": "<= 2 ms",
    "b": "<= 20 ms p99",
    "c": "<= 40 MB, growth < 1 MB",
    "d": "<= 2 beyond the actions",
    "e": ">= 20x the plain loop, >= 10 M frame decisions/s",
    "f": "<= 25 % of one core, <= 120 MB, p99 lateness <= 200 ms",
    "g": "<= 100 ms/frame on both cores, engine <= 200 MB, daemon <= 50 MB and "
         "<= 5 ms CPU per frame",
    "h": "p99 <= 1 ms with the engine at the defaults",
    "i": "<= 150 ms/frame at 2 threads, worker steady RSS <= 450 MB, stand-in p99 <= 1 ms "
         "at the defaults",
}
SECTIONS = "abcdefghi"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def measure_frames(frames: int) -> dict[str, Any]:
    here = Path(__file__).resolve().parent.parent
    fakes = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.fakes", cwd=here, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE)
    assert fakes.stdout is not None and fakes.stdin is not None
    try:
        line = (await asyncio.wait_for(fakes.stdout.readline(), 30)).decode().split()
        snapshot_url, predict_url, jpeg_size = line[0], line[1], int(line[2])
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.frames", snapshot_url, predict_url, str(frames),
            cwd=here, stdout=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(proc.communicate(), 1200)
        result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        result["jpeg_kb"] = jpeg_size / 1024
        return result
    finally:
        fakes.stdin.close()
        try:
            await asyncio.wait_for(fakes.wait(), 10)
        except asyncio.TimeoutError:
            fakes.kill()
            await fakes.wait()


async def run(args: argparse.Namespace) -> None:
    print("failwatch-moonraker benchmark (figures, not pass/fail)\n", flush=True)
    only = set(args.only)
    if only & set("abcd"):
        await _daemon_sections(args, only)
    if "e" in only:
        print_tune(measure_tune(plain_sets=args.tune_plain_sets))
    if "f" in only:
        await _farm_section(args)
    if "g" in only:
        print_local(await measure_local(args.local_frames), TARGETS["g"])
    if "h" in only:
        print_share(await measure_klipper_share(args.share_seconds), TARGETS["h"])
    if "i" in only:
        from bench.onnx_engine import measure_onnx, print_onnx

        print_onnx(await measure_onnx(args.onnx_frames, args.standin_seconds), TARGETS["i"])


async def _farm_section(args: argparse.Namespace) -> None:
    f = await measure_farm(args.farm_printers, args.farm_seconds, args.farm_latency)
    late = f["lateness_ms"]
    print(f"(f) farm: {f['printers']} printers at 1 frame/s each for {f['seconds']:.0f} s in one "
          f"daemon process: CPU {f['cpu_percent']:.1f} % of one core, RSS {f['rss_mb']:.1f} MB "
          f"(peak), frame lateness against schedule median {statistics.median(late):.1f} ms, "
          f"p99 {pct(late, 99):.1f} ms, max {max(late):.1f} ms [target {TARGETS['f']}]\n"
          f"    {f['frames']} frames ({f['min_frames']}-{f['max_frames']} per printer), all "
          f"printers watching {f['startup_s']:.1f} s after start, {f['restarts']} restarts; "
          f"fakes in a separate process: a minimal websocket Moonraker per printer (identify, "
          f"subscribe, history, status every 250 ms; not the real Moonraker), a 1280x720 "
          f"snapshot each, one Obico-style predictor answering after "
          f"{args.farm_latency * 1000:.0f} ms", flush=True)


async def _daemon_sections(args: argparse.Namespace, only: set[str]) -> None:
    frames = await measure_frames(args.frames) if only & set("ac") else {}
    if "a" in only:
        print(f"(a) CPU per frame ({frames['jpeg_kb']:.0f} KB 1280x720 JPEG passed through, "
              f"{frames['frames']} frames): {frames['cpu_ms_per_frame']:.2f} ms "
              f"[target {TARGETS['a']}]", flush=True)
    if "b" in only:
        await _latency_section(args)
    watch = await measure_watching(args.watch_seconds) if only & set("cd") else {}
    if "c" in only:
        print(f"(c) RSS: daemon process after start-up {watch['rss_startup_mb']:.1f} MB (real "
              f"process, connected, watching); frame driver {frames['rss_start_mb']:.1f} MB "
              f"before and {frames['rss_end_mb']:.1f} MB after {frames['frames']} frames, "
              f"growth {frames['rss_growth_mb']:+.2f} MB [target {TARGETS['c']}]", flush=True)
    if "d" in only:
        print(f"(d) Moonraker requests while watching a print at 1 frame/s for "
              f"{watch['seconds']:.0f} s: {watch['requests_per_minute']:.1f} per minute "
              f"({watch['requests']} requests, of which {watch['start_requests']} at print "
              f"start; no actions ran) [target {TARGETS['d']}]; daemon CPU share "
              f"{watch['cpu_percent']:.2f} % of one core", flush=True)


async def _latency_section(args: argparse.Namespace) -> None:
    lat = await measure_latency(args.trials)
    fail = lat["failure_to_pause_ms"]
    noop = lat["noop_one_way_ms"]
    rtt = lat["noop_round_trip_ms"]
    print(f"(b) failure confirmed -> PAUSE at Klippy, {len(fail)} trials: median "
          f"{statistics.median(fail):.2f} ms, p99 {pct(fail, 99):.2f} ms [target "
          f"{TARGETS['b']}]\n    Moonraker no-op script (G4 P0) in the same run: call -> Klippy "
          f"median {statistics.median(noop):.2f} ms, p99 {pct(noop, 99):.2f} ms; full round "
          f"trip median {statistics.median(rtt):.2f} ms, p99 {pct(rtt, 99):.2f} ms", flush=True)


def print_tune(t: dict[str, Any]) -> None:
    print(f"(e) tune: {t['sets']:,} settings x {t['prints']} prints x {t['frames']:,} frames = "
          f"{t['evaluations'] / 1e6:.0f} M frame decisions in {t['vector_s']:.2f} s "
          f"(prints to arrays {t['prepare_s']:.2f} s of it): "
          f"{t['vector_rate'] / 1e6:.1f} M decisions/s, {t['speedup']:.0f}x the plain loop "
          f"[target {TARGETS['e']}]\n    plain loop (the daemon's WatchSession frame by frame, "
          f"stopping at the first pause) timed on {t['plain_sets']} of the {t['sets']:,} "
          f"settings, {t['plain_s']:.2f} s, scaled x{t['sets'] / t['plain_sets']:.0f}: "
          f"{t['plain_scaled_s']:.0f} s for the same search, {t['plain_rate'] / 1e6:.2f} M "
          f"decisions/s ({t['plain_frames_run']:,} frames actually run); first pauses identical "
          f"on those settings: {'yes' if t['identical'] else 'NO'}", flush=True)


README_BLOCK = re.compile(r"(<!-- bench:begin[^>]*-->\n).*?(<!-- bench:end -->)", re.S)


class Tee(io.TextIOBase):
    """The console as usual, and a copy for the README."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.copy = io.StringIO()

    def write(self, text: str) -> int:
        self.copy.write(text)
        return self.out.write(text)

    def flush(self) -> None:
        self.out.flush()


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}"


def write_readme(path: Path, output: str, load: tuple[float, float, float],
                 started: datetime.datetime) -> None:
    text = path.read_text(encoding="utf-8")
    if not README_BLOCK.search(text):
        raise SystemExit(f"{path}: no <!-- bench:begin --> ... <!-- bench:end --> block")
    body = (f"Run {started:%Y-%m-%d %H:%M} UTC on {machine()}; load average "
            f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min) when it "
            f"started.\n\n```text\n{output.strip()}\n```\n")
    path.write_text(README_BLOCK.sub(lambda m: m.group(1) + body + m.group(2), text),
                    encoding="utf-8")
    print(f"figures written into {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description="failwatch-moonraker benchmark")
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--watch-seconds", type=float, default=30.0)
    parser.add_argument("--only", default=SECTIONS, metavar="SECTIONS",
                        help="run only these sections, e.g. --only e (default: abcdefghi)")
    parser.add_argument("--tune-plain-sets", type=int, default=10,
                        help="settings the plain loop of (e) is timed on")
    parser.add_argument("--farm-printers", type=int, default=50)
    parser.add_argument("--farm-seconds", type=float, default=30.0,
                        help="measured window of (f), after start-up")
    parser.add_argument("--farm-latency", type=float, default=0.05,
                        help="the fake predictor's answer time in (f), seconds")
    parser.add_argument("--local-frames", type=int, default=40,
                        help="frames (g) scores on both cores (half as many pinned)")
    parser.add_argument("--share-seconds", type=float, default=10.0,
                        help="seconds of each phase of (h)")
    parser.add_argument("--onnx-frames", type=int, default=30,
                        help="frames per engine and thread count in (i)")
    parser.add_argument("--standin-seconds", type=float, default=10.0,
                        help="how long the Klipper stand-in runs per case in (i)")
    parser.add_argument("--readme", type=Path, default=None, metavar="PATH",
                        help="also write the output into PATH's figures block")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    load = os.getloadavg()
    when = datetime.datetime.now(datetime.timezone.utc)
    tee = Tee(sys.stdout)
    started = time.monotonic()
    with contextlib.redirect_stdout(tee):
        asyncio.run(run(args))
        print(f"\n(bench took {time.monotonic() - started:.0f} s)")
    if args.readme is not None:
        write_readme(args.readme, tee.copy.getvalue(), load, when)


if __name__ == "__main__":
    main()
