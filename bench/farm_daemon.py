"""The real Farm with a stdin/stdout hook for the bench: the daemon process of section (f).

Commands on stdin, one per line: ``reset`` forgets the frame lateness gathered so far
(the warm-up), ``report`` prints one JSON line of figures, ``stop`` ends the farm.
Prints ``ready`` once every printer is watching and has taken a frame.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from failwatch_moonraker.config import load_config
from failwatch_moonraker.farm import Farm
from failwatch_moonraker.logs import setup_logging


async def main(path: str) -> None:
    config = load_config(path)
    setup_logging(config.logging.path, config.logging.level, config.secrets(),
                  config.logging.max_size, config.logging.backups, stream=False)
    farm = Farm(config)
    task = asyncio.create_task(farm.run())
    await farm.started.wait()
    while not all(d.can_watch() and d.frames > 0 for d in farm.daemons.values()):
        await asyncio.sleep(0.2)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    frames0 = {name: 0 for name in farm.daemons}
    t0 = time.monotonic()
    while True:
        command = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if command == "reset":
            for name, daemon in farm.daemons.items():
                daemon.lateness.clear()
                frames0[name] = daemon.frames
            t0 = time.monotonic()
        elif command == "report":
            lateness = [x for d in farm.daemons.values() for x in d.lateness]
            frames = {name: d.frames - frames0[name] for name, d in farm.daemons.items()}
            print(json.dumps({"lateness": lateness, "frames": frames,
                              "seconds": time.monotonic() - t0,
                              "restarts": sum(farm.restarts.values())}), flush=True)
        else:
            break
    farm.stop()
    await task


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
