"""Synthetic labelled prints for the replay/tune tests and the tune benchmark.

A quiet print scores a little noise with the odd short burst (a brim, a
reflection: what makes false alarms); a failing one, from ``failure_frame`` on,
scores ``level`` plus noise. The printer is established: a lifetime baseline
of quiet frames behind it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from failwatch_moonraker.tools.recording import RecordedFrame, Recording

START = 1_700_000_000.0
INTERVAL = 10.0


def synthetic_print(seed: int, frames: int = 600, *, failure_frame: int | None = None,
                    level: float = 1.0, bursts: int = 2, burst_level: float = 0.5,
                    long_mean: float = 0.03, lifetime: int = 7200,
                    name: str | None = None) -> Recording:
    rng = random.Random(seed)
    scores = [max(0.0, rng.gauss(0.03, 0.02)) for _ in range(frames)]
    for _ in range(bursts):
        at = rng.randrange(40, max(41, frames - 10))
        for k in range(at, min(frames, at + rng.randint(2, 8))):
            scores[k] += burst_level * rng.uniform(0.5, 1.2)
    if failure_frame is not None:
        for k in range(failure_frame, frames):
            ramp = min(1.0, (k - failure_frame + 1) / 6)
            scores[k] = max(0.0, level * ramp + rng.gauss(0.0, 0.15 * level))
    start = START + seed * 100_000
    rec = Recording(
        path=Path(f"{name or f'synthetic-{seed}'}.jsonl"),
        print_id=name or f"synthetic-{seed}", printer="sim", file=f"part-{seed}.gcode",
        start_time=start,
        stats={"p": 0.0, "ewm_mean": 0.0, "rolling_mean_short": 0.0, "prediction_num": 0,
               "rolling_mean_long": long_mean, "prediction_num_lifetime": lifetime},
    )
    rec.frames = [RecordedFrame(start + (k + 1) * INTERVAL, round(p, 4))
                  for k, p in enumerate(scores)]
    return rec


def failure_time(rec: Recording, failure_frame: int) -> float:
    """Seconds since the print started when the failure began (its first frame)."""
    return rec.frames[failure_frame].t - rec.start_time


def synthetic_cameras(seed: int, frames: int = 600,
                      cameras: Mapping[str, Mapping[str, Any]] | None = None,
                      name: str | None = None) -> Recording:
    """One print watched by several cameras, each scoring as :func:`synthetic_print` with
    its own options (its own baseline; a failure only one camera sees). Every interval
    each camera takes a frame, in the cameras' order, a second apart."""
    cameras = cameras if cameras is not None else {"front": {}, "side": {}}
    base = synthetic_print(seed, 1, name=name)
    rec = Recording(path=base.path, print_id=base.print_id, printer=base.printer,
                    file=base.file, start_time=base.start_time)
    merged: list[RecordedFrame] = []
    for index, (camera, options) in enumerate(cameras.items()):
        own = synthetic_print(seed * 100 + index, frames, **options)
        rec.cameras[camera] = own.stats
        for k, frame in enumerate(own.frames):
            merged.append(RecordedFrame(base.start_time + (k + 1) * INTERVAL + index, frame.p,
                                        camera=camera))
    rec.frames = sorted(merged, key=lambda f: f.t)
    rec.stats = dict(next(iter(rec.cameras.values())))
    return rec
