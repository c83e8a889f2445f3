"""Run the real Moonraker (from its own virtualenv) as a subprocess for tests.

Moonraker pins dependencies that clash with the daemon's, so it lives in
``.venv-moonraker`` and is driven purely over its public interfaces: HTTP and
websocket on 127.0.0.1 and its unix socket.  The config written here keeps it
offline (no usb.ids download, no announcements, no systemd) and quiet: its output
goes to files in the data dir, never to the test's terminal.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import signal
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import aiohttp

__all__ = ["MoonrakerError", "MoonrakerServer", "free_port", "moonraker_python"]

REPO_ROOT = Path(__file__).resolve().parent.parent
STOP_TIMEOUT = 10.0
UNIX_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL


# Moonraker runs in its own session (a Ctrl-C in the terminal must not reach it), so
# if the test process exits without stop() - e.g. an unhandled KeyboardInterrupt -
# these are killed at interpreter exit instead of being left behind.
_LIVE_PIDS: set[int] = set()
_ATEXIT_REGISTERED = False


def _kill_leftovers() -> None:
    for pid in list(_LIVE_PIDS):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    _LIVE_PIDS.clear()


def _track(pid: int) -> None:
    global _ATEXIT_REGISTERED
    if not _ATEXIT_REGISTERED:
        atexit.register(_kill_leftovers)
        _ATEXIT_REGISTERED = True
    _LIVE_PIDS.add(pid)


class MoonrakerError(Exception):
    """A JSON-RPC error returned by Moonraker (``code`` as on the wire)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def moonraker_python() -> str:
    """The interpreter that has ``moonraker`` installed.

    ``FAILWATCH_MOONRAKER_PYTHON`` wins; otherwise ``<repo>/.venv-moonraker/bin/python``.
    """
    configured = os.environ.get("FAILWATCH_MOONRAKER_PYTHON")
    candidate = Path(configured) if configured else REPO_ROOT / ".venv-moonraker" / "bin" / "python"
    if not candidate.exists():
        where = "FAILWATCH_MOONRAKER_PYTHON" if configured else "the default location"
        raise FileNotFoundError(
            f"Moonraker's Python not found at {candidate} ({where}); "
            "run `make moonraker-venv` to install moonraker==0.11.0"
        )
    return str(candidate)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no {path.name})"
    return "\n".join(text.splitlines()[-lines:])


class MoonrakerServer:
    """One Moonraker process with a private data dir, pointed at a Klippy socket."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        klippy_socket: str | os.PathLike[str],
        port: int | None = None,
        require_api_key: bool = False,
        webcams: Sequence[Mapping[str, Any]] = (),
        extra_config: str = "",
    ) -> None:
        self.data_dir = Path(data_dir)
        self.klippy_socket = Path(klippy_socket)
        self.port = port
        self.require_api_key = require_api_key
        self.webcams = [dict(w) for w in webcams]
        self.extra_config = extra_config
        self.config_path = self.data_dir / "config" / "moonraker.conf"
        self.log_path = self.data_dir / "logs" / "moonraker.log"
        self.output_path = self.data_dir / "logs" / "moonraker.out"
        self.unix_socket = self.data_dir / "comms" / "moonraker.sock"
        self.api_key: str | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._output: IO[bytes] | None = None
        self._session: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------------ addresses

    @property
    def url(self) -> str:
        """The websocket URL."""
        return f"ws://127.0.0.1:{self._port()}/websocket"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self._port()}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _port(self) -> int:
        if self.port is None:
            raise RuntimeError("MoonrakerServer has no port until start()")
        return self.port

    def auth_headers(self) -> dict[str, str]:
        """Headers an HTTP/websocket client needs (the API key, if one is required)."""
        return {"X-Api-Key": self.api_key} if self.api_key else {}

    # ------------------------------------------------------------------ config

    def config_text(self) -> str:
        """moonraker.conf as Part C of the reference describes it."""
        parts = [
            "[server]",
            "host: 127.0.0.1",
            f"port: {self._port()}",
            f"klippy_uds_address: {self.klippy_socket}",
            "",
            "[authorization]",
        ]
        if not self.require_api_key:
            parts += ["trusted_clients:", "    127.0.0.0/8", "    ::1/128"]
        parts += [
            "",
            "[machine]",
            "provider: none",
            "validate_service: False",
            "validate_config: False",
            "",
            "[announcements]",
            "enable_moonlight: False",
            "",
            "[file_manager]",
            "enable_object_processing: False",
            "",
        ]
        for cam in self.webcams:
            options = dict(cam)
            name = options.pop("name", None) or "cam"
            options.setdefault("service", "mjpegstreamer-adaptive")
            options.setdefault("stream_url", options.get("snapshot_url", "/webcam/?action=stream"))
            parts.append(f"[webcam {name}]")
            for key, value in options.items():
                if isinstance(value, bool):
                    value = "True" if value else "False"
                parts.append(f"{key}: {value}")
            parts.append("")
        if self.extra_config:
            parts.append(self.extra_config.strip())
            parts.append("")
        return "\n".join(parts)

    def _prepare_dirs(self) -> None:
        for sub in ("config", "logs", "misc", "comms", "gcodes", "database"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        # Without this file Moonraker downloads usb.ids from the internet at start.
        (self.data_dir / "misc" / "usb.ids").touch()
        for path in (self.unix_socket, self.klippy_socket):
            if len(os.fsencode(str(path))) > UNIX_PATH_MAX:
                raise ValueError(f"unix socket path too long for AF_UNIX: {path}")

    # ------------------------------------------------------------------ lifecycle

    async def start(self, timeout: float = 30.0) -> None:
        """Write the config, spawn Moonraker and wait until ``/server/info`` answers."""
        if self.running:
            raise RuntimeError("Moonraker already running")
        python = moonraker_python()
        explicit_port = self.port is not None
        attempts = 1 if explicit_port else 3
        for attempt in range(attempts):
            if not explicit_port:
                self.port = free_port()
            try:
                await self._start_once(python, timeout)
                return
            except _PortTaken:
                if attempt == attempts - 1:
                    raise RuntimeError(
                        f"Moonraker could not bind port {self.port}:\n{self._log_tail()}"
                    ) from None
                if not explicit_port:
                    self.port = None

    async def _start_once(self, python: str, timeout: float) -> None:
        self._prepare_dirs()
        self.config_path.write_text(self.config_text())
        self._output = open(self.output_path, "ab")  # noqa: SIM115 - closed in stop()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOONRAKER_")}
        env["PYTHONUNBUFFERED"] = "1"
        self._proc = await asyncio.create_subprocess_exec(
            python, "-m", "moonraker",
            "-d", str(self.data_dir), "-c", str(self.config_path), "-l", str(self.log_path),
            stdin=asyncio.subprocess.DEVNULL, stdout=self._output, stderr=asyncio.subprocess.STDOUT,
            env=env, start_new_session=True,
        )
        _track(self._proc.pid)
        try:
            await asyncio.wait_for(self._wait_http_up(), timeout)
            if self.require_api_key:
                self.api_key = await asyncio.wait_for(self._read_api_key(), timeout)
            else:
                self.api_key = None
        except _PortTaken:
            await self.stop()
            raise
        except asyncio.TimeoutError:
            tail = self._log_tail()
            await self.stop()
            raise TimeoutError(
                f"Moonraker did not come up within {timeout:.0f}s:\n{tail}"
            ) from None
        except BaseException:
            await self.stop()
            raise

    def _log_tail(self) -> str:
        return (
            f"--- {self.log_path} ---\n{_tail(self.log_path)}\n"
            f"--- {self.output_path} ---\n{_tail(self.output_path)}"
        )

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.returncode is not None:
            tail = self._log_tail()
            if "Address already in use" in tail or "Errno 98" in tail:
                raise _PortTaken()
            raise RuntimeError(
                f"Moonraker exited with code {self._proc.returncode} during start:\n{tail}"
            )

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self._session

    async def _wait_http_up(self) -> None:
        session = self._http()
        while True:
            self._check_alive()
            try:
                async with session.get(
                    f"{self.http_url}/server/info", timeout=aiohttp.ClientTimeout(total=2)
                ) as resp:
                    await resp.read()
                    return  # any answer, even 401, means the HTTP server is up
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                pass
            await asyncio.sleep(0.1)

    async def _read_api_key(self) -> str:
        """Ask Moonraker for its API key over the unix socket, which needs no auth."""
        while not self.unix_socket.exists():
            self._check_alive()
            await asyncio.sleep(0.05)
        reader, writer = await asyncio.open_unix_connection(str(self.unix_socket))
        try:
            request = {"jsonrpc": "2.0", "method": "access.get_api_key", "id": 1}
            writer.write(json.dumps(request).encode() + b"\x03")
            await writer.drain()
            while True:
                data = await reader.readuntil(b"\x03")
                reply = json.loads(data[:-1])
                if reply.get("id") != 1:
                    continue  # a notification
                if "error" in reply:
                    err = reply["error"]
                    raise MoonrakerError(err.get("code", 0), err.get("message", ""))
                return str(reply["result"])
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def stop(self) -> None:
        """SIGTERM, wait up to 10 s, then SIGKILL; idempotent."""
        proc, self._proc = self._proc, None
        try:
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
                except asyncio.TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
                except asyncio.CancelledError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()  # no time left for a clean exit; never leave it behind
                    raise
            elif proc is not None:
                await proc.wait()
        finally:
            if proc is not None:
                _LIVE_PIDS.discard(proc.pid)
            if self._session is not None:
                await self._session.close()
                self._session = None
            if self._output is not None:
                self._output.close()
                self._output = None

    async def restart(self) -> None:
        """Stop and start again on the same port with the same data (database kept)."""
        await self.stop()
        await self.start()

    # ------------------------------------------------------------------ API

    async def call(
        self, method: str, params: Mapping[str, Any] | None = None, timeout: float = 15.0
    ) -> Any:
        """One JSON-RPC call over HTTP ``/server/jsonrpc``; errors raise MoonrakerError."""
        body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": 1}
        if params is not None:
            body["params"] = dict(params)
        async with self._http().post(
            f"{self.http_url}/server/jsonrpc", json=body, headers=self.auth_headers(),
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            text = await resp.text()
        try:
            reply = json.loads(text)
        except ValueError:
            raise MoonrakerError(resp.status, text[:500]) from None
        if "error" in reply:
            err = reply["error"]
            raise MoonrakerError(int(err.get("code", resp.status)), str(err.get("message", "")))
        return reply.get("result")

    async def server_info(self) -> dict[str, Any]:
        result = await self.call("server.info")
        return dict(result)

    async def wait_klippy_ready(self, timeout: float = 20.0) -> None:
        """Wait until ``server.info`` reports Klippy connected and ready."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        info: dict[str, Any] = {}
        while True:
            if self._proc is not None:
                self._check_alive()
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, MoonrakerError):
                info = await self.server_info()
                if info.get("klippy_connected") and info.get("klippy_state") == "ready":
                    return
            if loop.time() >= deadline:
                raise TimeoutError(
                    f"Klippy not ready in Moonraker after {timeout:.1f}s: "
                    f"klippy_connected={info.get('klippy_connected')} "
                    f"klippy_state={info.get('klippy_state')}\n{self._log_tail()}"
                )
            await asyncio.sleep(0.1)


class _PortTaken(Exception):
    """Moonraker lost the race for the port picked by free_port()."""
