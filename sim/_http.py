"""A tiny aiohttp host for the fake services, able to stop listening on demand.

aiohttp's sites cannot be closed synchronously, but a fake camera must be able to
"refuse connections" the instant a test flips a switch.  So this owns the asyncio
server itself: ``unlisten()`` closes the listening socket and drops open connections
right away, ``listen()`` binds the same port again.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Sized

from aiohttp import web

__all__ = ["LocalHTTPServer"]


class LocalHTTPServer:
    """Serve an aiohttp ``Application`` on 127.0.0.1 with a switchable listener."""

    def __init__(
        self, app: web.Application, *, port: int | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.app = app
        self.host = host
        self.port = port or 0
        self._runner: web.AppRunner | None = None
        self._server: asyncio.AbstractServer | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        self._runner = web.AppRunner(
            self.app, handle_signals=False, access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        await self.listen()

    async def listen(self) -> None:
        """Bind (again) on the same port; a no-op while already listening."""
        if self._server is not None:
            return
        if self._runner is None or self._runner.server is None:
            raise RuntimeError("server not started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(100)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.port = int(sock.getsockname()[1])
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._runner.server, sock=sock)

    def unlisten(self) -> None:
        """Stop accepting connections now and cut the open ones (connection refused)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        if self._runner is not None and self._runner.server is not None:
            for handler in list(self._runner.server.connections):
                handler.force_close()

    async def stop(self) -> None:
        self.unlisten()
        runner, self._runner = self._runner, None
        if runner is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(runner.cleanup(), 5.0)


class Arrivals:
    """Wakes whoever waits for a fake's requests; one per fake server."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._event = asyncio.Event()

    def note(self) -> None:
        """A request was recorded: wake the waiters."""
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait_for(self, requests: Sized, count: int, timeout: float) -> None:
        """Wait until ``requests`` holds at least ``count`` entries."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(requests) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{self.what} got {len(requests)} requests, wanted {count}, "
                                   f"within {timeout:.1f}s")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._event.wait(), remaining)
