"""(a) CPU per frame and (c) memory over 10,000 frames, in a process that is only the daemon.

Run by ``bench/__main__.py`` with the fakes' URLs; drives :meth:`Daemon.frame` back to back
(real aiohttp camera client, real Obico predictor client, stats, decision, state saves).
Prints one JSON line of figures.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import aiohttp


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def main(snapshot_url: str, predict_url: str, frames: int) -> dict[str, float]:
    from failwatch_moonraker.config import parse_config
    from failwatch_moonraker.daemon import Daemon

    workdir = Path(tempfile.mkdtemp(prefix="failwatch-bench-"))
    config = parse_config(
        f"[predictor]\nurl: {predict_url}\nserial_no: BENCH-0001\naccess_token: bench-token\n"
        f"[camera]\nsnapshot_url: {snapshot_url}\n"
        f"[state]\npath: {workdir / 'state.json'}\n[logging]\npath:\n")
    daemon = Daemon(config)
    daemon.klippy_ready = daemon.print_verified = True
    daemon.session.on_print_state("printing", time.time())
    daemon.session.begin_print("bench-print")
    async with aiohttp.ClientSession() as http:
        daemon.wire(http)  # the cameras and predictor of the config, as run() makes them
        for _ in range(20):  # warm up: connections, imports, allocator
            await daemon.frame()
        rss_start = rss_mb()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(frames):
            await daemon.frame()
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - wall0
        rss_end = rss_mb()
    return {
        "frames": frames,
        "cpu_ms_per_frame": cpu / frames * 1000,
        "wall_ms_per_frame": wall / frames * 1000,
        "rss_start_mb": rss_start,
        "rss_end_mb": rss_end,
        "rss_growth_mb": rss_end - rss_start,
        "prediction_num": daemon.session.stats.prediction_num,
    }


if __name__ == "__main__":
    result = asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    print(json.dumps(result), flush=True)
