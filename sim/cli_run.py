"""Run the failwatch command line as a user does: a real process, bounded in time."""

from __future__ import annotations

import asyncio
import sys

CLI = [sys.executable, "-m", "failwatch_moonraker"]


async def run_cli(*args: str, timeout: float = 60.0) -> tuple[int, str, str]:
    """(exit status, stdout, stderr); the process is killed if it outlives ``timeout``."""
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
