"""The fake camera and predictor in a process of their own, so their CPU is not the daemon's.

Prints ``<snapshot url> <predict url> <jpeg bytes>`` on one line, then serves until stdin closes.
"""

from __future__ import annotations

import asyncio
import sys

from sim.camera import FakeCamera
from sim.predictor import FakeObicoPredictor

SERIAL_NO = "BENCH-0001"
ACCESS_TOKEN = "bench-token"


async def main() -> None:
    async with FakeCamera() as camera, FakeObicoPredictor(SERIAL_NO, ACCESS_TOKEN) as predictor:
        print(camera.url, predictor.url, len(camera.jpeg), flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main())
