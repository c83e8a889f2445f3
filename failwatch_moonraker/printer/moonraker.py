"""Moonraker's websocket, as an agent: JSON-RPC calls, notifications, reconnects.

The client only keeps the socket alive and matches replies to calls. What
to do after each (re)connect (identify is done here; subscribing and the
like are the daemon's) comes from the ``on_connect`` hook, and every
notification goes to ``on_notification``, a plain function that must not
block. Moonraker restarting is normal life on a printer host: the client
reconnects with a backoff capped at 10 s, forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

log = logging.getLogger(__name__)
rpc_log = logging.getLogger("failwatch.rpc")  # one DEBUG line per call, never the params

RECONNECT_CAP = 10.0
AUTH_RETRY = 60.0
UNAUTHORIZED_CODES = (-32602, 401, 403)

NotificationHandler = Callable[[str, Any], None]
ConnectHook = Callable[[], Awaitable[None]]


class MoonrakerError(Exception):
    """An error answer to a JSON-RPC call."""

    def __init__(self, code: int, message: str, method: str = "") -> None:
        super().__init__(f"{method}: {message} (code {code})" if method else message)
        self.code = code
        self.message = message
        self.method = method


class NotConnected(MoonrakerError):
    def __init__(self, method: str = "") -> None:
        super().__init__(503, "not connected to Moonraker", method)


class AuthFailed(Exception):
    """Moonraker wants credentials we do not have or that it refuses."""


class AgentNameTaken(MoonrakerError):
    """Another socket is registered under our agent name: our own previous one, still
    being closed, or a second failwatch for this printer. Moonraker counts the refused
    socket as identified, so only a new connection can try again."""


NAME_TAKEN_RETRY = 0.5  # seconds; Moonraker frees the name as soon as the old socket closes
NAME_TAKEN_PATIENCE = 10  # quick retries before saying another failwatch may be connected


def is_auth_error(exc: MoonrakerError) -> bool:
    text = exc.message.lower()
    return exc.code in UNAUTHORIZED_CODES and ("unauthorized" in text or "api key" in text)


def auth_advice(exc: MoonrakerError, have_key: bool) -> str:
    """What the user should do, in their words."""
    if have_key:
        return (
            f"Moonraker refused the api_key set in [moonraker] of failwatch.cfg ({exc.message}). "
            "Copy the current key from Mainsail/Fluidd (Settings > Authorization / API key) "
            "into [moonraker] api_key and restart failwatch."
        )
    return (
        f"Moonraker requires authorization ({exc.message}) and failwatch.cfg has no api_key. "
        "Either add this host to [authorization] trusted_clients in moonraker.conf, or copy the "
        "API key from Mainsail/Fluidd (Settings > Authorization) into [moonraker] api_key "
        "in failwatch.cfg, then restart failwatch."
    )


def _text(value: Any, limit: int = 500) -> str:
    """Moonraker's error text, whatever shape a broken message gives it."""
    if isinstance(value, str):
        return value[:limit]
    try:
        return repr(value)[:limit]
    except (RecursionError, ValueError):
        return f"(an unreadable {type(value).__name__})"


def _expire(future: asyncio.Future[Any], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)


class MoonrakerClient:
    def __init__(
        self,
        url: str,
        *,
        api_key: str = "",
        client_name: str = "failwatch",
        version: str = "0",
        project_url: str = "https://github.com/failwatch/failwatch-moonraker",
        on_notification: NotificationHandler | None = None,
        on_connect: ConnectHook | None = None,
        on_disconnect: Callable[[], None] | None = None,
        on_auth_failure: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.url = url
        self._api_key = api_key
        self.client_name = client_name
        self.version = version
        self.project_url = project_url
        self.on_notification = on_notification
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self.on_auth_failure = on_auth_failure
        self._ws: ClientConnection | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self.ready = asyncio.Event()  # identified and the connect hook ran
        self.connection_id: int | None = None
        self.connects = 0
        self.requests_sent = 0
        self.last_error: str = ""

    def __repr__(self) -> str:  # never show the key
        return f"MoonrakerClient(url={self.url!r})"

    # -- public --------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._ws is not None

    async def call(self, method: str, params: dict[str, Any] | None = None,
                   timeout: float = 10.0) -> Any:
        """One JSON-RPC call; raises MoonrakerError with Moonraker's own message."""
        ws = self._ws
        if ws is None:
            raise NotConnected(method)
        req_id = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": req_id}
        if params is not None:
            message["params"] = params
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = future
        try:
            try:
                await ws.send(json.dumps(message))
            except ConnectionClosed:
                raise NotConnected(method) from None
            self.requests_sent += 1
            rpc_log.debug("%s", method)
            # A timer rather than asyncio.wait_for: on Python < 3.12 wait_for can swallow
            # a cancellation that races with the reply, and shutdown must never hang.
            timer = asyncio.get_running_loop().call_later(
                timeout, _expire, future, MoonrakerError(504, f"no answer within {timeout:g} s",
                                                         method))
            try:
                return await future
            finally:
                timer.cancel()
        finally:
            self._pending.pop(req_id, None)

    async def open(self) -> asyncio.Task[None]:
        """Connect and identify once; returns the reader task that ends with the socket.

        Raises AuthFailed when Moonraker wants credentials, OSError and friends
        when it cannot be reached.
        """
        ws = await connect(
            self.url, open_timeout=10, ping_interval=20, ping_timeout=20,
            max_size=32 * 1024 * 1024, close_timeout=1,
        )
        self._ws = ws
        reader = asyncio.create_task(self._read(ws), name="moonraker-reader")
        try:
            await self._identify()
        except BaseException:
            await self._drop(reader)
            raise
        return reader

    async def _drop(self, reader: asyncio.Task[None]) -> None:
        ws = self._ws
        self._ws = None
        self.ready.clear()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        self._fail_pending()

    async def run(self) -> None:
        """Connect, identify, run the hook, read; reconnect forever."""
        delay = 1.0
        auth_reported = False
        taken = 0  # connections in a row refused for our agent name
        while True:
            identified = False
            unexpected = False
            try:
                reader = await self.open()
                try:
                    identified = True
                    taken = 0
                    self.connects += 1
                    if auth_reported:
                        log.info("moonraker: authorized again")
                    auth_reported = False
                    delay = 1.0
                    log.info("moonraker: connected to %s as agent '%s'", self.url,
                             self.client_name)
                    if self.on_connect is not None:
                        await self.on_connect()
                    self.ready.set()
                    await asyncio.shield(reader)
                finally:
                    await self._drop(reader)
            except AuthFailed as exc:
                self.last_error = str(exc)
                if not auth_reported:
                    log.error("moonraker: %s", exc)
                    auth_reported = True
                    if self.on_auth_failure is not None:
                        with contextlib.suppress(Exception):
                            await self.on_auth_failure(str(exc))
                else:
                    log.debug("moonraker: still not authorized")
                delay = AUTH_RETRY
            except AgentNameTaken as exc:
                self.last_error = str(exc)
                taken += 1
                if taken < NAME_TAKEN_PATIENCE:
                    log.info("moonraker: agent name '%s' still held by the previous "
                             "connection; connecting again in %g s", self.client_name,
                             NAME_TAKEN_RETRY)
                    await asyncio.sleep(NAME_TAKEN_RETRY)
                    continue
                if taken == NAME_TAKEN_PATIENCE:
                    log.warning("moonraker: another client is connected to %s as agent "
                                "'%s' (a second failwatch for this printer?); failwatch "
                                "connects as soon as it leaves", self.url, self.client_name)
            except (OSError, InvalidHandshake, ConnectionClosed, asyncio.TimeoutError) as exc:
                self.last_error = f"{exc.__class__.__name__}: {exc}"
                log.warning("moonraker: cannot reach %s (%s); retrying in %g s",
                            self.url, self.last_error, delay)
            except InvalidURI as exc:
                self.last_error = str(exc)
                log.error("moonraker: bad url %s: %s", self.url, exc)
                delay = AUTH_RETRY
            except MoonrakerError as exc:
                self.last_error = str(exc)
                log.warning("moonraker: %s; reconnecting in %g s", exc, delay)
            except Exception as exc:  # a malformed answer during connect, a bug in a hook
                error = f"{exc.__class__.__name__}: {exc}"[:300]
                unexpected = True
                if error != self.last_error:  # the traceback once, not every reconnect
                    log.error("moonraker: unexpected error on the connection to %s; dropped "
                              "it, reconnecting in %g s", self.url, delay, exc_info=True)
                else:
                    log.warning("moonraker: the same error again (%s); reconnecting in %g s",
                                error, delay)
                self.last_error = error
            if identified:
                log.warning("moonraker: connection lost; reconnecting")
                if self.on_disconnect is not None:
                    self.on_disconnect()
                if not unexpected:  # the same error again at once would flood the log
                    delay = 1.0
            await asyncio.sleep(delay)
            if delay < RECONNECT_CAP:
                delay = min(delay * 2, RECONNECT_CAP)

    # -- internals -----------------------------------------------------------

    async def _identify(self) -> None:
        params: dict[str, Any] = {
            "client_name": self.client_name,
            "version": self.version,
            "type": "agent",
            "url": self.project_url,
        }
        if self._api_key:
            params["api_key"] = self._api_key
        try:
            result = await self.call("server.connection.identify", params)
        except MoonrakerError as exc:
            if is_auth_error(exc):
                raise AuthFailed(auth_advice(exc, bool(self._api_key))) from None
            if "already registered" in exc.message:
                raise AgentNameTaken(exc.code, exc.message, exc.method) from None
            raise
        if isinstance(result, dict):
            self.connection_id = result.get("connection_id")

    async def _read(self, ws: ClientConnection) -> None:
        async for raw in ws:
            try:
                await self._handle(ws, raw)
            except Exception as exc:  # a malformed message must never end the reader
                log.warning("moonraker: dropped a malformed message (%s: %s)",
                            exc.__class__.__name__, str(exc)[:200])
                log.debug("moonraker: malformed message", exc_info=True)

    async def _handle(self, ws: ClientConnection, raw: str | bytes) -> None:
        """One message: a reply to a call, a request to us, or a notification."""
        try:
            message = json.loads(raw)
        except RecursionError:
            log.warning("moonraker: dropped a message nested too deep")
            return
        except ValueError:
            log.debug("moonraker: ignoring a non-JSON message")
            return
        if not isinstance(message, dict):
            return
        method = message.get("method")
        if method is None:
            req_id = message.get("id", -1)
            if not isinstance(req_id, int) or isinstance(req_id, bool):
                log.warning("moonraker: dropped a reply with an invalid id (%s)",
                            type(req_id).__name__)
                return
            future = self._pending.get(req_id)
            if future is None or future.done():
                return
            error = message.get("error")
            if error is not None:
                if not isinstance(error, dict):
                    error = {"message": _text(error)}
                code = error.get("code", 500)
                if not isinstance(code, int) or isinstance(code, bool):
                    code = 500
                text = _text(error.get("message", error))
                future.set_exception(MoonrakerError(code, text))
            else:
                future.set_result(message.get("result"))
            return
        if not isinstance(method, str):
            log.warning("moonraker: dropped a message whose method is not a string")
            return
        if "id" in message:
            # server.extensions.request: no such method here (yet); answer so the
            # caller is not left waiting.
            await self._reply_error(ws, message["id"], -32601,
                                    f"Method not found: {method[:100]}")
            return
        if self.on_notification is not None:
            try:
                self.on_notification(method, message.get("params"))
            except Exception:
                log.exception("moonraker: handler for %s failed", method[:100])

    async def _reply_error(self, ws: ClientConnection, req_id: Any, code: int, text: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": req_id,
                                      "error": {"code": code, "message": text}}))

    def _fail_pending(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(NotConnected())
        self._pending.clear()

    async def close(self) -> None:
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        self._fail_pending()


async def console_via_unix_socket(path: str, script: str, timeout: float = 5.0) -> bool:
    """Run G-code through Moonraker's unix socket, which needs no credentials.

    Used to tell the user on the printer console that the websocket was refused;
    returns False when the socket is not there (another host, or no access).
    """
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    try:
        request = {"jsonrpc": "2.0", "method": "printer.gcode.script",
                   "params": {"script": script}, "id": 1}
        writer.write(json.dumps(request).encode() + b"\x03")
        await writer.drain()
        while True:
            data = await asyncio.wait_for(reader.readuntil(b"\x03"), timeout)
            reply = json.loads(data[:-1])
            if isinstance(reply, dict) and reply.get("id") == 1:
                return "result" in reply
    except (OSError, ValueError, asyncio.TimeoutError, asyncio.IncompleteReadError,
            asyncio.LimitOverrunError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


__all__ = [
    "AuthFailed",
    "MoonrakerClient",
    "MoonrakerError",
    "NotConnected",
    "console_via_unix_socket",
]
