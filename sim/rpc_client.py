"""A minimal Moonraker websocket JSON-RPC client for tests, the demo and benchmarks.

Not the daemon's client: this one records every notification so a test can assert
on exactly what Moonraker pushed, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

__all__ = ["MoonrakerClient", "RpcError"]


class RpcError(Exception):
    """A JSON-RPC error reply; ``code`` and ``message`` as on the wire."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = data


class MoonrakerClient:
    """Websocket client: ``call()`` for requests, ``notifications`` for everything pushed."""

    def __init__(self, url: str, *, headers: Mapping[str, str] | None = None) -> None:
        self.url = url
        self.headers = dict(headers or {})
        self.notifications: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse[bool] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()
        self.closed = asyncio.Event()

    async def connect(self, timeout: float = 10.0) -> None:
        session = self._session = aiohttp.ClientSession()

        async def open_ws() -> aiohttp.ClientWebSocketResponse[bool]:
            return await session.ws_connect(
                self.url, headers=self.headers, max_msg_size=64 * 1024 * 1024)

        try:
            self._ws = await asyncio.wait_for(open_ws(), timeout)
        except BaseException:
            await self._session.close()
            raise
        self._reader = asyncio.create_task(self._read_loop(), name="moonraker-client-reader")

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 5.0)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        if self._session is not None:
            await self._session.close()
        self._fail_pending(ConnectionError("client closed"))

    async def __aenter__(self) -> MoonrakerClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ receiving

    async def _read_loop(self) -> None:
        assert self._ws is not None
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                for item in data if isinstance(data, list) else [data]:
                    self._dispatch(item)
        finally:
            self.closed.set()
            self._fail_pending(ConnectionError("websocket closed"))
            self._wake()

    def _dispatch(self, item: dict[str, Any]) -> None:
        if "method" in item:  # a notification, or a request to an agent
            self.notifications.append(item)
            self._wake()
            return
        future = self._pending.pop(item.get("id", -1), None)
        if future is None or future.done():
            return
        if "error" in item:
            err = item["error"]
            future.set_exception(RpcError(err.get("code", 0), err.get("message", ""),
                                          err.get("data")))
        else:
            future.set_result(item.get("result"))

    def _wake(self) -> None:
        event, self._arrived = self._arrived, asyncio.Event()
        event.set()

    def _fail_pending(self, exc: Exception) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(exc)
        self._pending.clear()

    # ------------------------------------------------------------------ API

    async def call(
        self, method: str, params: Mapping[str, Any] | None = None, timeout: float = 10.0
    ) -> Any:
        """Send a request and wait for its reply; error replies raise RpcError."""
        if self._ws is None or self.closed.is_set():
            raise ConnectionError("not connected")
        req_id = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": req_id}
        if params is not None:
            message["params"] = dict(params)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = future
        await self._ws.send_str(json.dumps(message))
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(req_id, None)

    async def identify(
        self, name: str = "failwatch-test", *, client_type: str = "agent",
        api_key: str | None = None, version: str = "0.0.1",
    ) -> Any:
        params = {"client_name": name, "version": version, "type": client_type,
                  "url": "https://example.invalid/failwatch"}
        if api_key is not None:
            params["api_key"] = api_key
        return await self.call("server.connection.identify", params)

    async def subscribe(self, objects: Mapping[str, list[str] | None]) -> dict[str, Any]:
        result = await self.call("printer.objects.subscribe", {"objects": dict(objects)})
        return dict(result)

    def mark(self) -> int:
        """Current position in ``notifications``; pass as ``start`` to wait for newer ones."""
        return len(self.notifications)

    def find(
        self, method: str, predicate: Callable[[dict[str, Any]], bool] | None = None,
        start: int = 0,
    ) -> list[dict[str, Any]]:
        """Notifications named ``method`` from index ``start`` that satisfy ``predicate``."""
        return [
            n for n in self.notifications[start:]
            if n.get("method") == method and (predicate is None or predicate(n))
        ]

    async def wait_for(
        self, method: str, predicate: Callable[[dict[str, Any]], bool] | None = None,
        *, timeout: float = 10.0, start: int = 0,
    ) -> dict[str, Any]:
        """Wait for a ``method`` notification (index >= ``start``) matching ``predicate``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pos = start
        while True:
            while pos < len(self.notifications):
                item = self.notifications[pos]
                pos += 1
                if item.get("method") == method and (predicate is None or predicate(item)):
                    return item
            remaining = deadline - loop.time()
            if remaining <= 0 or self.closed.is_set():
                seen = [n.get("method") for n in self.notifications[start:]
                        if n.get("method") != "notify_proc_stat_update"]
                raise TimeoutError(
                    f"no {method} notification matching within {timeout:.1f}s "
                    f"(closed={self.closed.is_set()}); seen: {seen[-30:]}"
                )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    @staticmethod
    def status_of(notification: dict[str, Any]) -> dict[str, Any]:
        """The status diff of a ``notify_status_update``."""
        params = notification.get("params") or [{}]
        return dict(params[0])
