"""(g) the local engine (PiNozCam's real runner) and (h) Klipper's share of the CPU.

(g) A frame driver process, importing what the daemon imports, scores a 1280x720
JPEG back to back through ``backend: pinozcam``: ms per frame on both cores and
pinned to one, the engine's RSS, the driver's RSS and its CPU per frame (decode +
letterbox in the image thread, and everything the process did per frame).

(h) A stand-in for Klippy's host process: nice 0, wakes every 10 ms and records
how late it woke. Measured idle, then with the engine scoring back to back at
failwatch's defaults (nice 10, ``cpus: auto``: every CPU but CPU 0), then on every
CPU at nice 10 and at nice 0, in one run.

Run as ``python -m bench.local_engine drive|klippy ...`` for the child processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
TICK = 0.010


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


# ------------------------------------------------------------------ child: frame driver


async def _drive(jpeg_path: str, nice: int, cpus: str, frames: int, seconds: float
                 ) -> dict[str, Any]:
    import resource

    import failwatch_moonraker.daemon  # noqa: F401  (the daemon's imports: a fair RSS)
    from failwatch_moonraker.config import parse_config
    from failwatch_moonraker.predictors.local import pinozcam
    from failwatch_moonraker.predictors.local.letterbox import letterbox

    prep_cpu: list[float] = []

    def timed_letterbox(data: bytes, w: int, h: int) -> Any:
        began = time.thread_time()
        out = letterbox(data, w, h)
        prep_cpu.append(time.thread_time() - began)
        return out

    pinozcam.letterbox = timed_letterbox  # type: ignore[assignment]
    jpeg = Path(jpeg_path).read_bytes()
    text = f"[predictor]\nbackend: pinozcam\nnice: {nice}\ntimeout: 60\n"
    if cpus:
        text += f"cpus: {cpus}\n"  # else the default, auto
    pred = pinozcam.PinozcamPredictor(parse_config(text).predictor)
    try:
        await pred.warm_up()
        await pred.predict(jpeg, "bench")  # first real frame: not counted
        prep_cpu.clear()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu0 = usage.ru_utime + usage.ru_stime
        wall: list[float] = []
        deadline = time.monotonic() + seconds if seconds else None
        while (len(wall) < frames) if deadline is None else (time.monotonic() < deadline):
            began = time.perf_counter()
            await pred.predict(jpeg, "bench")
            wall.append((time.perf_counter() - began) * 1000.0)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime - cpu0
        facts = pred.engine_facts()
        with open("/proc/self/status", encoding="ascii") as handle:
            rss = next(int(line.split()[1]) / 1024 for line in handle
                       if line.startswith("VmRSS:"))
        return {"frames": len(wall), "ms": wall, "cpu_ms_per_frame": cpu * 1000 / len(wall),
                "prep_ms": [c * 1000 for c in prep_cpu], "driver_rss_mb": rss,
                "engine_rss_mb": facts["rss_mb"], "engine_peak_mb": facts["peak_rss_mb"],
                "engine_nice": facts["nice"], "engine_cpus": facts["cpus"],
                "startup_s": facts["startup_s"]}
    finally:
        await pred.close()


# ------------------------------------------------------------------ child: Klippy stand-in


def _klippy(seconds: float) -> dict[str, Any]:
    late: list[float] = []
    target = time.monotonic() + TICK
    end = target + seconds
    while target < end:
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        late.append(max(0.0, time.monotonic() - target) * 1000.0)
        target += TICK
    return {"wakes": len(late), "p99_ms": pct(late, 99), "max_ms": max(late),
            "median_ms": statistics.median(late)}


# ------------------------------------------------------------------ parent


async def _child(*args: str, timeout: float = 600.0) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.local_engine", *args, cwd=HERE,
        stdout=asyncio.subprocess.PIPE)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def _jpeg() -> str:
    from sim.camera import make_snapshot_jpeg

    path = Path(tempfile.mkdtemp(prefix="failwatch-bench-")) / "frame.jpg"
    path.write_bytes(make_snapshot_jpeg(1280, 720))
    return str(path)


async def measure_local(frames: int) -> dict[str, Any]:
    jpeg = _jpeg()
    both = await _child("drive", jpeg, "--frames", str(frames), "--cpus", "all")
    one = await _child("drive", jpeg, "--frames", str(max(5, frames // 2)), "--cpus", "0")
    return {"both": both, "one": one}


async def measure_klipper_share(seconds: float) -> dict[str, Any]:
    jpeg = _jpeg()
    idle = await _child("klippy", "--seconds", str(seconds))
    result: dict[str, Any] = {"idle": idle, "seconds": seconds}
    for case, nice, cpus in (("default", 10, "auto"), ("all10", 10, "all"),
                             ("all0", 0, "all")):
        engine = asyncio.create_task(_child("drive", jpeg, "--seconds", str(seconds + 4),
                                            "--nice", str(nice), "--cpus", cpus))
        await asyncio.sleep(2.0)  # the engine is loaded and scoring
        result[case] = await _child("klippy", "--seconds", str(seconds))
        result[f"engine_{case}"] = await engine
    return result


def print_local(g: dict[str, Any], target: str) -> None:
    both, one = g["both"], g["one"]
    prep = both["prep_ms"]
    print(f"(g) local engine (PiNozCam's runner, 1280x720 JPEG back to back): "
          f"{statistics.median(both['ms']):.0f} ms/frame median, p95 {pct(both['ms'], 95):.0f} "
          f"ms on both cores ({both['frames']} frames); pinned to one CPU "
          f"{statistics.median(one['ms']):.0f} ms median, p95 {pct(one['ms'], 95):.0f} ms "
          f"({one['frames']} frames); engine RSS {both['engine_rss_mb']:.0f} MB (peak "
          f"{both['engine_peak_mb']:.0f} MB), ready {both['startup_s']:.2f} s after spawn; "
          f"daemon side: RSS {both['driver_rss_mb']:.1f} MB, decode + letterbox "
          f"{statistics.median(prep):.2f} ms CPU per frame (p95 {pct(prep, 95):.2f}), all of "
          f"its CPU {both['cpu_ms_per_frame']:.2f} ms per frame [target {target}]", flush=True)


def print_share(h: dict[str, Any], target: str) -> None:
    def fmt(r: dict[str, Any]) -> str:
        return f"p99 {r['p99_ms']:.2f} ms, max {r['max_ms']:.2f} ms"

    ed, e10, e0 = h["engine_default"], h["engine_all10"], h["engine_all0"]
    print(f"(h) Klippy stand-in (nice 0, wakes every 10 ms, {h['seconds']:.0f} s each) lateness: "
          f"idle {fmt(h['idle'])}; engine scoring back to back at the defaults (nice "
          f"{ed['engine_nice']}, cpus auto = CPUs {ed['engine_cpus']}) {fmt(h['default'])}; "
          f"on every CPU at nice {e10['engine_nice']} {fmt(h['all10'])}; on every CPU at nice "
          f"{e0['engine_nice']} {fmt(h['all0'])} [target {target}]\n    engine meanwhile: "
          f"{statistics.median(ed['ms']):.0f} ms/frame at the defaults, "
          f"{statistics.median(e10['ms']):.0f} ms/frame on every CPU at nice 10, "
          f"{statistics.median(e0['ms']):.0f} at nice 0", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    drive = sub.add_parser("drive")
    drive.add_argument("jpeg")
    drive.add_argument("--frames", type=int, default=20)
    drive.add_argument("--seconds", type=float, default=0.0)
    drive.add_argument("--nice", type=int, default=10)
    drive.add_argument("--cpus", default="")
    klippy = sub.add_parser("klippy")
    klippy.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    if args.what == "drive":
        out = asyncio.run(_drive(args.jpeg, args.nice, args.cpus, args.frames, args.seconds))
    else:
        out = _klippy(args.seconds)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
