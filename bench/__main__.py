"""``make bench``: the figures the README reports.

(a) daemon CPU per frame, pass-through 1280x720 JPEG, network waits excluded;
(b) latency from the predictor answer that confirms a failure to PAUSE at the
    emulated Klippy through the real Moonraker, next to Moonraker's own trip
    for a no-op script measured in the same run;
(c) RSS after start-up and after 10,000 frames, and the growth;
(d) Moonraker requests per minute while a print is watched.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.latency import measure_latency
from bench.watching import measure_watching

TARGETS = {
    "a": "<= 2 ms",
    "b": "<= 20 ms p99",
    "c": "<= 40 MB, growth < 1 MB",
    "d": "<= 2 beyond the actions",
}


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
    frames = await measure_frames(args.frames)
    print(f"(a) CPU per frame ({frames['jpeg_kb']:.0f} KB 1280x720 JPEG passed through, "
          f"{frames['frames']} frames): {frames['cpu_ms_per_frame']:.2f} ms "
          f"[target {TARGETS['a']}]", flush=True)
    lat = await measure_latency(args.trials)
    fail = lat["failure_to_pause_ms"]
    noop = lat["noop_one_way_ms"]
    rtt = lat["noop_round_trip_ms"]
    print(f"(b) failure confirmed -> PAUSE at Klippy, {len(fail)} trials: median "
          f"{statistics.median(fail):.2f} ms, p99 {pct(fail, 99):.2f} ms [target "
          f"{TARGETS['b']}]\n    Moonraker no-op script (G4 P0) in the same run: call -> Klippy "
          f"median {statistics.median(noop):.2f} ms, p99 {pct(noop, 99):.2f} ms; full round "
          f"trip median {statistics.median(rtt):.2f} ms, p99 {pct(rtt, 99):.2f} ms", flush=True)
    watch = await measure_watching(args.watch_seconds)
    print(f"(c) RSS: daemon process after start-up {watch['rss_startup_mb']:.1f} MB (real "
          f"process, connected, watching); frame driver {frames['rss_start_mb']:.1f} MB before "
          f"and {frames['rss_end_mb']:.1f} MB after {frames['frames']} frames, growth "
          f"{frames['rss_growth_mb']:+.2f} MB [target {TARGETS['c']}]", flush=True)
    print(f"(d) Moonraker requests while watching a print at 1 frame/s for "
          f"{watch['seconds']:.0f} s: {watch['requests_per_minute']:.1f} per minute "
          f"({watch['requests']} requests, of which {watch['start_requests']} at print start; "
          f"no actions ran) [target {TARGETS['d']}]; daemon CPU share "
          f"{watch['cpu_percent']:.2f} % of one core", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="failwatch-moonraker benchmark")
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--watch-seconds", type=float, default=30.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    started = time.monotonic()
    asyncio.run(run(args))
    print(f"\n(bench took {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
