"""Simulated printer parts for integration tests, benchmarks and the demo.

Everything here runs on 127.0.0.1 or unix sockets inside one asyncio loop:

- :class:`sim.klippy.EmulatedKlippy` - a Klippy on Moonraker's unix socket,
- :class:`sim.moonraker_server.MoonrakerServer` - the real Moonraker as a subprocess,
- :class:`sim.camera.FakeCamera` - a snapshot server standing in for crowsnest,
- :class:`sim.predictor.FakeObicoPredictor` - the Obico partner predict API,
- :class:`sim.harness.SimPrinter` - all of the above wired together,
- :class:`sim.rpc_client.MoonrakerClient` - a recording websocket client for tests.

Submodules are imported lazily so that, e.g., the camera can be used without
pulling in the Moonraker helpers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim.camera import FakeCamera
    from sim.harness import SimPrinter
    from sim.klippy import EmulatedKlippy, KlippyError
    from sim.moonraker_server import MoonrakerError, MoonrakerServer, moonraker_python
    from sim.predictor import FakeObicoPredictor
    from sim.rpc_client import MoonrakerClient, RpcError

__all__ = [
    "EmulatedKlippy",
    "FakeCamera",
    "FakeObicoPredictor",
    "KlippyError",
    "MoonrakerError",
    "MoonrakerServer",
    "MoonrakerClient",
    "RpcError",
    "SimPrinter",
    "moonraker_python",
]

_WHERE = {
    "EmulatedKlippy": "sim.klippy",
    "KlippyError": "sim.klippy",
    "MoonrakerServer": "sim.moonraker_server",
    "MoonrakerError": "sim.moonraker_server",
    "moonraker_python": "sim.moonraker_server",
    "FakeCamera": "sim.camera",
    "FakeObicoPredictor": "sim.predictor",
    "SimPrinter": "sim.harness",
    "MoonrakerClient": "sim.rpc_client",
    "RpcError": "sim.rpc_client",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
