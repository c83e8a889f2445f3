"""Bounded waiting for tests and benchmarks: poll a condition, fail with what was awaited."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from failwatch_moonraker.daemon import Daemon


async def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "",
                     interval: float = 0.05) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what or predicate}")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def running_daemon(cfg: Path, *, ready: bool = True,
                         stop_timeout: float = 10.0) -> AsyncIterator[Daemon]:
    """The daemon of ``cfg`` running in this loop; stopped (and awaited, at most
    ``stop_timeout`` seconds) on the way out.

    With ``ready`` it waits until the daemon is connected to Moonraker; without, for a
    daemon that is expected not to get through.
    """
    from failwatch_moonraker.config import load_config
    from failwatch_moonraker.daemon import Daemon

    daemon = Daemon(load_config(cfg))
    task = asyncio.create_task(daemon.run())
    try:
        if ready:
            await asyncio.wait_for(daemon.client.ready.wait(), 15)
        yield daemon
    finally:
        daemon.stop()
        await asyncio.wait_for(task, stop_timeout)
