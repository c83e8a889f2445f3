"""Bounded waiting for tests and benchmarks: poll a condition, fail with what was awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


async def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "",
                     interval: float = 0.05) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what or predicate}")
        await asyncio.sleep(interval)
