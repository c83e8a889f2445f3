"""(e) ``tune``'s search: the vectorised evaluation against the plain loop, in the same run.

1,000 settings x 100 synthetic prints x 1,000 frames = 10^8 frame decisions.
The plain loop is the reference implementation (the daemon's WatchSession, frame
by frame, stopping at the first pause); it would take minutes over the whole
grid, so it is timed on a few settings and scaled, and its answers on those
settings are checked against the vectorised ones.
"""

from __future__ import annotations

import itertools
import random
import time
from typing import Any

import numpy as np

from failwatch_moonraker.tools.replay import make_settings
from failwatch_moonraker.tools.tune import first_pauses, first_pauses_plain, make_batch
from sim.recordings import synthetic_print


def grid(count: int) -> list[Any]:
    """``count`` settings around Obico's, every searched key varying."""
    base = make_settings({}, {})
    values = {
        "sensitivity": [0.8, 0.9, 1.0, 1.2, 1.4],
        "threshold_low": [0.3, 0.34, 0.38, 0.42, 0.46],
        "short_multiple": [3.0, 3.4, 3.8, 4.6],
        "escalating_factor": [1.5, 1.6, 1.75, 1.9, 2.0],
        "ewm_span": [8, 12],
    }
    import dataclasses

    combos = itertools.islice(itertools.product(*values.values()), count)
    return [dataclasses.replace(base, **dict(zip(values, c, strict=True))) for c in combos]


def measure_tune(sets: int = 1000, prints: int = 100, frames: int = 1000,
                 plain_sets: int = 10) -> dict[str, Any]:
    rng = random.Random(5)
    recs = [synthetic_print(seed, frames, bursts=3, burst_level=0.9, level=rng.uniform(0.6, 1.6),
                            failure_frame=rng.randrange(frames // 2, frames) if seed % 3 == 0
                            else None)
            for seed in range(prints)]
    settings = grid(sets)
    started = time.perf_counter()
    batch = make_batch(recs)
    prepared = time.perf_counter()
    fast = first_pauses(batch, settings)
    done = time.perf_counter()
    subset = settings[:: max(1, len(settings) // plain_sets)][:plain_sets]
    picks = [settings.index(s) for s in subset]
    plain_started = time.perf_counter()
    slow = first_pauses_plain(recs, subset)
    plain = time.perf_counter() - plain_started
    evaluations = len(settings) * prints * frames
    vector_s = done - started
    plain_scaled = plain * len(settings) / len(subset)
    plain_frames = int(sum(f + 1 if f >= 0 else frames for f in slow.ravel().tolist()))
    return {
        "sets": len(settings), "prints": prints, "frames": frames,
        "evaluations": evaluations,
        "prepare_s": prepared - started,
        "vector_s": vector_s,
        "vector_rate": evaluations / vector_s,
        "plain_sets": len(subset),
        "plain_s": plain,
        "plain_scaled_s": plain_scaled,
        "plain_rate": evaluations / plain_scaled,
        "plain_frames_run": plain_frames,
        "speedup": plain_scaled / vector_s,
        "identical": bool(np.array_equal(fast[picks], slow)),
        "paused_share": float((fast >= 0).mean()),
    }
