"""One-time HTTP URLs for frames, for ML servers that download the image themselves.

Obico's self-hosted ml_api takes no upload: it is given ``?img=<URL>`` and fetches
the picture. So the daemon offers each frame at an unguessable path
(``secrets.token_urlsafe``) for the duration of one predict call; the first GET
takes it away (a second GET, or any GET after the call, is a 404). The server
never holds more than the frames in flight, one per printer at most.

Several printers of a farm that name the same bind address and port share one
listening socket (:func:`acquire` / :func:`release` count the users per event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

log = logging.getLogger(__name__)

PREFIX = "/failwatch/frame/"
SUFFIX = ".jpg"
_HEADERS = {"Cache-Control": "no-store"}


class FrameServer:
    """A tiny HTTP server holding at most the in-flight frames."""

    def __init__(self, bind: str, port: int) -> None:
        self.bind = bind
        self.port = port
        self.served = 0  # frames handed out
        self.refused = 0  # GETs of unknown or already-served paths
        self._frames: dict[str, bytes] = {}
        self._server: asyncio.AbstractServer | None = None
        self._handler: web.Server | None = None

    @property
    def pending(self) -> int:
        """Frames currently offered and not yet fetched."""
        return len(self._frames)

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """Bind; raises OSError (address in use, no such address) for the caller to report."""
        if self._server is not None:
            return
        self._handler = web.Server(self._handle, access_log=None)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._handler, self.bind, self.port, reuse_address=True)
        sock = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])
        log.info("frame server: listening on %s:%d for the ML server's downloads",
                 self.bind, self.port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        self._frames.clear()
        if server is not None:
            server.close()
            if self._handler is not None:
                with contextlib.suppress(Exception):
                    await self._handler.shutdown(1.0)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)

    @contextlib.asynccontextmanager
    async def offer(self, jpeg: bytes) -> AsyncIterator[str]:
        """Make ``jpeg`` fetchable once at the yielded path, until the block ends."""
        token = secrets.token_urlsafe(24)
        self._frames[token] = jpeg
        try:
            yield f"{PREFIX}{token}{SUFFIX}"
        finally:
            self._frames.pop(token, None)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if not (path.startswith(PREFIX) and path.endswith(SUFFIX)):
            self.refused += 1
            return web.Response(status=404, text="not found\n", headers=_HEADERS)
        if request.method != "GET":
            return web.Response(status=405, text="GET only\n", headers={"Allow": "GET"})
        jpeg = self._frames.pop(path[len(PREFIX):-len(SUFFIX)], None)
        if jpeg is None:
            self.refused += 1
            return web.Response(status=404, text="gone\n", headers=_HEADERS)
        self.served += 1
        return web.Response(body=jpeg, content_type="image/jpeg", headers=_HEADERS)


# -- sharing one socket between the printers of a farm -------------------------


@dataclass
class _Entry:
    server: FrameServer
    started: asyncio.Task[None]
    users: int = 0


_shared: dict[tuple[int, str, int], _Entry] = {}


async def acquire(bind: str, port: int) -> FrameServer:
    """The running server for ``bind:port`` in this event loop, started on first use."""
    key = (id(asyncio.get_running_loop()), bind, port)
    entry = _shared.get(key)
    if entry is None:
        server = FrameServer(bind, port)
        entry = _Entry(server, asyncio.create_task(server.start(), name="frame-server"))
        _shared[key] = entry
    entry.users += 1
    try:
        await asyncio.shield(entry.started)
    except BaseException:
        entry.users -= 1
        if _shared.get(key) is entry:
            task = entry.started
            failed = task.done() and (task.cancelled() or task.exception() is not None)
            if failed:
                del _shared[key]  # a failed start must not stick: the next acquire retries
            elif entry.users == 0:  # cancelled while starting and nobody else waits
                del _shared[key]
                task.cancel()
                task.add_done_callback(lambda _t: asyncio.ensure_future(entry.server.stop()))
        raise
    return entry.server


async def release(server: FrameServer) -> None:
    """One user fewer; the last one stops the server."""
    for key, entry in list(_shared.items()):
        if entry.server is server:
            entry.users -= 1
            if entry.users <= 0:
                del _shared[key]
                await server.stop()
            return
    await server.stop()


def _local_address_towards(host: str, port: int) -> str:
    """The address of this machine on the route to ``host`` (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host, port or 80))
        return str(probe.getsockname()[0])


async def public_base(bind: str, port: int, towards_url: str) -> str:
    """``http://host:port`` the ML server at ``towards_url`` can reach us on.

    A specific bind address is used as is; for a wildcard bind, the address of the
    interface that routes to the ML server (127.0.0.1 when it runs on this host).
    """
    host = bind
    if bind in ("", "0.0.0.0", "::"):
        target = urlsplit(towards_url)
        try:
            host = await asyncio.to_thread(
                _local_address_towards, target.hostname or "127.0.0.1", target.port or 80)
        except OSError:
            host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"
