"""A stand-in for Klippy's host process: nice 0, wakes every 10 ms, records how late.

``python -m bench.klipper_standin SECONDS`` prints one JSON line: the lateness
of its wake-ups in milliseconds (median, p99, max) over SECONDS. A local engine
that takes the CPU from Klipper shows here as lateness.
"""

from __future__ import annotations

import json
import sys
import time

PERIOD = 0.010


def run(seconds: float) -> dict[str, float]:
    late: list[float] = []
    start = time.monotonic()
    k = 1
    while True:
        target = start + k * PERIOD
        now = time.monotonic()
        if target > now:
            time.sleep(target - now)
        woke = time.monotonic()
        late.append((woke - target) * 1000.0)
        if woke - start >= seconds:
            break
        k = max(k + 1, int((woke - start) / PERIOD) + 1)  # a missed tick is not queued
    late.sort()
    return {"n": len(late), "median_ms": late[len(late) // 2],
            "p99_ms": late[min(len(late) - 1, round(0.99 * (len(late) - 1)))],
            "max_ms": late[-1]}


if __name__ == "__main__":
    print(json.dumps(run(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0)), flush=True)
