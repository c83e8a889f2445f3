"""(i) Obico-size ONNX engine: ms per frame, worker memory, load time, Klipper's share.

The graph is :mod:`bench.obico_graph` (Obico's layer structure and tensors,
random weights, cached outside the repository). Frames are 1280x720 JPEGs sent
through the daemon side of ``backend: onnx`` to the real worker process, as the
daemon does; the same frames go to the PiNozCam engine when pinozcam-runtime
is installed. The Klipper stand-in of section (h) (``bench.local_engine klippy``:
nice 0, wakes every 10 ms) runs idle, then beside each engine scoring back to back.

``python -m bench.onnx_engine`` runs this section alone.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from failwatch_moonraker.predictors.local.engine import rss_bytes

HERE = Path(__file__).resolve().parent.parent
MB = 2**20


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def frames() -> list[bytes]:
    from sim.camera import make_snapshot_jpeg
    from sim.drawn import spaghetti_jpeg

    return [make_snapshot_jpeg(), spaghetti_jpeg()]


async def _standin(seconds: float) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.local_engine", "klippy", "--seconds", str(seconds), cwd=HERE,
        stdout=asyncio.subprocess.PIPE)


async def _standin_result(proc: asyncio.subprocess.Process) -> dict[str, float]:
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    result: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def lateness_beside(predictor: Any, pictures: list[bytes],
                          seconds: float) -> dict[str, float]:
    """The stand-in's lateness while ``predictor`` scores back to back (None: idle)."""
    if predictor is not None:
        await predictor.warm_up()
    proc = await _standin(seconds)
    task = asyncio.create_task(_standin_result(proc))
    scored = 0
    while not task.done():
        if predictor is None:
            await asyncio.sleep(0.1)
            continue
        await predictor.predict(pictures[scored % len(pictures)], "bench")
        scored += 1
    result = await task
    result["frames"] = scored
    return result


async def engine_figures(predictor: Any, pictures: list[bytes], count: int) -> dict[str, Any]:
    """Load time, memory at load and steady, ms per frame (daemon side, round trip)."""
    began = time.perf_counter()
    await predictor.warm_up()
    load_s = time.perf_counter() - began
    pid = predictor.engine.pid
    at_load = rss_bytes(pid) or (0, 0)
    times: list[float] = []
    infer: list[float] = []
    for i in range(count):
        t0 = time.perf_counter()
        pred = await predictor.predict(pictures[i % len(pictures)], "bench")
        times.append((time.perf_counter() - t0) * 1000.0)
        if "infer_ms" in pred.raw:
            infer.append(float(pred.raw["infer_ms"]))
    steady = rss_bytes(pid) or (0, 0)
    await predictor.close()
    return {"load_s": load_s, "rss_load_mb": at_load[0] / MB, "peak_mb": steady[1] / MB,
            "rss_steady_mb": steady[0] / MB, "median_ms": statistics.median(times),
            "p95_ms": pct(times, 95), "infer_median_ms": statistics.median(infer) if infer
            else None, "frames": count}


def onnx_predictor(model: Path, threads: int | str = "auto", cpus: str = "auto") -> Any:
    """backend onnx as failwatch.cfg makes it (nice 10; ``cpus``/``threads`` as given)."""
    from failwatch_moonraker.config import parse_config
    from failwatch_moonraker.predictors.local.onnx_backend import OnnxPredictor

    cfg = parse_config(f"[predictor]\nbackend: onnx\nmodel: {model}\ntimeout: 120\n"
                       f"threads: {threads}\ncpus: {cpus}\n")
    predictor = OnnxPredictor.from_config(cfg.predictor)
    predictor.engine.start_timeout = 300  # a first build of the model can be slow
    return predictor


def pinozcam_predictor(cpus: str = "auto") -> Any:
    import importlib.util

    if importlib.util.find_spec("pinozcam_runner") is None:
        return None
    from failwatch_moonraker.config import parse_config
    from failwatch_moonraker.predictors.local.pinozcam import PinozcamPredictor

    cfg = parse_config(f"[predictor]\nbackend: pinozcam\ntimeout: 120\ncpus: {cpus}\n")
    return PinozcamPredictor(cfg.predictor)


async def measure_onnx(count: int = 30, standin_seconds: float = 8.0) -> dict[str, Any]:
    from bench.obico_graph import build, model_path

    cached = model_path().is_file()
    t0 = time.perf_counter()
    model = build()
    built_s = time.perf_counter() - t0
    pictures = frames()
    out: dict[str, Any] = {"model": str(model), "model_mb": model.stat().st_size / 1e6,
                           "cached": cached, "built_s": built_s, "threads": {}}
    for threads in (1, 2):
        out["threads"][threads] = await engine_figures(onnx_predictor(model, threads, "all"),
                                                       pictures, count)
    pz = pinozcam_predictor("all")
    out["pinozcam"] = await engine_figures(pz, pictures, count) if pz is not None else None
    late: dict[str, Any] = {"idle": await lateness_beside(None, pictures, standin_seconds)}
    for label, make in (("onnx_default", lambda: onnx_predictor(model)),
                        ("onnx_all", lambda: onnx_predictor(model, 2, "all")),
                        ("pinozcam_default", lambda: pinozcam_predictor()),
                        ("pinozcam_all", lambda: pinozcam_predictor("all"))):
        predictor = make()
        if predictor is None:
            continue
        try:
            late[label] = await lateness_beside(predictor, pictures, standin_seconds)
        finally:
            await predictor.close()
    out["lateness"] = late
    with open("/proc/loadavg", encoding="ascii") as fh:
        out["loadavg"] = fh.read().split()[:3]
    return out


def print_onnx(r: dict[str, Any], target: str) -> None:
    t1, t2 = r["threads"][1], r["threads"][2]
    origin = "cached" if r["cached"] else f"built in {r['built_s']:.1f} s"
    print(f"(i) Obico-size ONNX model (YOLOv2 416x416, Obico's layer structure and tensors, "
          f"random weights, {r['model_mb']:.0f} MB, "
          f"{origin}; {t1['frames']} "
          f"1280x720 frames per run, round trip through the worker):", flush=True)
    for n, t in ((1, t1), (2, t2)):
        print(f"    {n} thread{'s' if n > 1 else ''}: {t['median_ms']:.0f} ms/frame median, "
              f"p95 {t['p95_ms']:.0f} ms (onnxruntime alone {t['infer_median_ms']:.0f} ms); "
              f"load {t['load_s']:.2f} s; worker RSS {t['rss_load_mb']:.0f} MB after load, "
              f"{t['rss_steady_mb']:.0f} MB steady, peak {t['peak_mb']:.0f} MB", flush=True)
    pz = r.get("pinozcam")
    if pz:
        print(f"    PiNozCam engine, same frames: {pz['median_ms']:.0f} ms/frame median, p95 "
              f"{pz['p95_ms']:.0f} ms; load {pz['load_s']:.2f} s; RSS {pz['rss_steady_mb']:.0f} "
              f"MB steady, peak {pz['peak_mb']:.0f} MB", flush=True)
    late = r["lateness"]
    parts = []
    for key, label in (("idle", "idle"),
                       ("onnx_default", "onnx at the defaults (nice 10, cpus auto, threads "
                                        "auto)"),
                       ("onnx_all", "onnx 2 threads on every CPU"),
                       ("pinozcam_default", "PiNozCam at the defaults"),
                       ("pinozcam_all", "PiNozCam on every CPU")):
        if key in late:
            v = late[key]
            parts.append(f"{label} p99 {v['p99_ms']:.2f} / max {v['max_ms']:.1f} ms")
    print(f"    Klipper stand-in (nice 0, 10 ms period) lateness: {'; '.join(parts)} "
          f"[target {target}]; load average {' '.join(r['loadavg'])} "
          "(a shared machine)", flush=True)


TARGET = ("<= 150 ms/frame at 2 threads, worker steady RSS <= 450 MB, stand-in p99 <= 1 ms "
          "at the defaults")

if __name__ == "__main__":
    result = asyncio.run(measure_onnx())
    print_onnx(result, TARGET)
