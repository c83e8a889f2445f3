"""A websocket that speaks just enough of Moonraker's JSON-RPC to send broken messages.

The real Moonraker never sends ``{"id": [1], "result": {}}`` or JSON nested
100,000 deep, but a proxy, a plugin or a bug might, and failwatch's client must
survive them (issue 10 item 7). It answers ``server.connection.identify`` and
any call listed in ``results`` (``{}`` for the rest), sends the raw ``after_identify``
messages once a connection identified, and counts connections. 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

__all__ = ["HostileMoonraker"]


class HostileMoonraker:
    def __init__(self) -> None:
        self.results: dict[str, Any] = {"server.info": {"klippy_state": "startup"}}
        self.raw_results: dict[str, str] = {}  # method -> raw reply text, "{id}" filled in
        self.after_identify: list[str | bytes] = []
        self.connections = 0
        self.calls: list[str] = []
        self._server: Server | None = None
        self._sockets: set[ServerConnection] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/websocket"

    async def __aenter__(self) -> HostileMoonraker:
        self._server = await serve(self._handle, "127.0.0.1", 0, max_size=64 * 1024 * 1024)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for ws in list(self._sockets):
            await ws.close()
        await asyncio.wait_for(self._server.wait_closed(), 5)

    async def send_all(self, message: str | bytes) -> None:
        """Send a raw message to every open connection."""
        for ws in list(self._sockets):
            await ws.send(message)

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        self._sockets.add(ws)
        try:
            async for raw in ws:
                request = json.loads(raw)
                method = request.get("method", "")
                self.calls.append(method)
                req_id = request.get("id")
                if method in self.raw_results:
                    await ws.send(self.raw_results[method].replace("{id}", json.dumps(req_id)))
                    continue
                if method == "server.connection.identify":
                    result: Any = {"connection_id": 1000 + self.connections}
                else:
                    result = self.results.get(method, {})
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": req_id, "result": result}))
                if method == "server.connection.identify":
                    for message in self.after_identify:
                        await ws.send(message)
        except ConnectionClosed:
            pass
        finally:
            self._sockets.discard(ws)
