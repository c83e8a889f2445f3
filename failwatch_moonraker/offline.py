""""failwatch is not running" on the console, however the daemon ended.

The daemon sets ``_FAILWATCH_STATE.online`` to False when it stops cleanly;
a SIGKILL or the OOM killer give it no chance, and the macros would then call
a remote method nobody answers (Moonraker only logs "Unknown method"). Two
things cover that, both through :func:`mark_offline`:

* under systemd, the unit's ``ExecStopPost=`` runs ``failwatch-moonraker
  --config PATH offline`` once the process has ended, whatever way;
* run by hand (a terminal, a container, another supervisor), ``run`` first
  starts a small guardian process (``offline --guard``) that waits for the
  daemon's end, sees whether it said goodbye, and marks failwatch offline if
  it did not.

Before changing anything, the command connects to Moonraker as the agent
``failwatch``: Moonraker refuses a second agent of that name, so a daemon
still (or again) connected is never marked offline by mistake.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import subprocess
import sys
from typing import IO, TextIO

from failwatch_moonraker import __version__
from failwatch_moonraker.config import Config
from failwatch_moonraker.printer.control import STATE_MACRO
from failwatch_moonraker.printer.moonraker import AuthFailed, MoonrakerClient, MoonrakerError

OFFLINE_SCRIPT = f"SET_GCODE_VARIABLE MACRO={STATE_MACRO} VARIABLE=online VALUE=False"
#: What the daemon writes to the guardian's pipe when it stopped cleanly.
GOODBYE = b"stopped\n"
#: Set (by the systemd unit, whose ExecStopPost does the job) to start no guardian.
NO_GUARDIAN_ENV = "FAILWATCH_NO_GUARDIAN"
TIMEOUT = 5.0  # with SETTLE below the unit's TimeoutStopSec=10, which bounds ExecStopPost
SETTLE = 3.0  # how long a refused agent name is taken for Moonraker's delay, not a daemon


async def mark_offline(config: Config, out: TextIO, timeout: float = TIMEOUT) -> int:
    """Tell every printer's macros that failwatch is not running; 0 if nothing failed."""
    targets = config.printers or (config,)
    results = await asyncio.gather(*(_one(printer, out, timeout) for printer in targets))
    return max(results, default=0)


def _agent_taken(exc: MoonrakerError) -> bool:
    """Moonraker refused the name "failwatch": another failwatch is connected.
    (Moonraker 0.11 says "already identified" when the identify is repeated.)"""
    return "already registered" in exc.message or "already identified" in exc.message


async def _one(config: Config, out: TextIO, timeout: float) -> int:
    url = config.moonraker.url
    deadline = asyncio.get_running_loop().time() + SETTLE
    while True:
        client = MoonrakerClient(url, api_key=config.moonraker.api_key, version=__version__)
        try:
            reader = await asyncio.wait_for(client.open(), timeout)
        except AuthFailed as exc:
            _say(out, f"cannot tell the macros on {url} that failwatch stopped: {exc}")
            return 1
        except MoonrakerError as exc:
            await client.close()
            if not _agent_taken(exc):
                _say(out, f"cannot tell the macros on {url} that failwatch stopped: {exc}")
                return 1
            # Moonraker may not have noticed yet that the dead daemon's socket closed.
            if asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.5)
                continue
            _say(out, f"failwatch is connected to {url}: its macros are left online")
            return 0
        except (OSError, asyncio.TimeoutError, Exception) as exc:  # noqa: BLE001
            await client.close()
            _say(out, f"cannot reach Moonraker at {url} ({exc.__class__.__name__}: {exc}); "
                 "the FAILWATCH_* macros may still think failwatch is running until "
                 "Klipper restarts")
            return 1
        return await _mark(client, reader, url, out, timeout)


async def _mark(client: MoonrakerClient, reader: asyncio.Task[None], url: str, out: TextIO,
                timeout: float) -> int:
    try:
        try:
            await client.call("printer.gcode.script", {"script": OFFLINE_SCRIPT},
                              timeout=timeout)
        except MoonrakerError as exc:
            if "gcode_macro" in exc.message.lower():  # failwatch_macros.cfg not included
                _say(out, f"no FAILWATCH_* macros on {url}: nothing to mark")
                return 0
            if exc.code == 504:  # our own timer: the line waits for Klipper's G-code lock
                _say(out, f"Klipper on {url} is busy (heating, for example): the macros say "
                     "failwatch is not running as soon as it is done")
                return 0
            _say(out, f"could not mark failwatch offline on {url}: {exc}")
            return 1
        _say(out, f"the FAILWATCH_* macros on {url} now say failwatch is not running")
        return 0
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        await client.close()


def _say(out: TextIO, text: str) -> None:
    from failwatch_moonraker.secrets import scrub

    print(f"failwatch offline: {scrub(text)}", file=out, flush=True)


# -- the guardian of a daemon run outside systemd -------------------------------------


def start_guardian(config_path: str) -> subprocess.Popen[bytes] | None:
    """Start ``offline --guard`` watching this process; None under our systemd unit."""
    if os.environ.get(NO_GUARDIAN_ENV):
        return None
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "failwatch_moonraker", "--config", config_path,
             "offline", "--guard", str(os.getpid())],
            stdin=subprocess.PIPE, start_new_session=True)  # Ctrl-C must not reach it
    except OSError:
        return None


def say_goodbye(guardian: subprocess.Popen[bytes] | None) -> None:
    """The daemon stopped cleanly and told the macros itself: the guardian has nothing to do."""
    if guardian is None or guardian.stdin is None:
        return
    with contextlib.suppress(OSError, ValueError):
        guardian.stdin.write(GOODBYE)
        guardian.stdin.close()


def wait_for_parent(parent: int, stdin: IO[bytes], poll: float = 1.0) -> bool:
    """Block until process ``parent`` is gone; True if it said goodbye first.

    The pipe closes when the parent dies, whatever way; the parent's pid is
    checked too, in case a child of the daemon inherited the pipe.
    """
    fd = stdin.fileno()
    got = b""
    while True:
        ready, _, _ = select.select([fd], [], [], poll)
        if ready:
            chunk = os.read(fd, 64)
            got += chunk
            if not chunk or GOODBYE in got:
                break
        if os.getppid() != parent:
            break
    return GOODBYE in got


def guard(config: Config, parent: int, out: TextIO) -> int:
    """The guardian: wait for the daemon's end; mark offline unless it stopped cleanly."""
    if wait_for_parent(parent, sys.stdin.buffer):
        return 0
    return asyncio.run(mark_offline(config, out))
