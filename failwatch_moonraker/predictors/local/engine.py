"""Supervisor of one local engine: a model that runs in a child process of its own.

Why a child: the daemon stays small, and a crash, hang or out-of-memory kill of
the model takes nothing else down. The child is spawned at a ``nice`` value and
on a CPU list (Klipper must always win the CPU), started lazily by the first
request (the first frame of a print, not at boot) and stopped ``unload_after``
seconds after the print ends, so the host's memory is free between prints.

Wire format (PiNozCam's runner protocol; every local engine speaks it): one
request at a time on the child's stdin, one reply on its stdout, little-endian::

    request  [u32 cmd][u32 len][len bytes]
    reply    [u32 status][u32 len][len bytes]     status 0 = OK

Every fault is a :class:`~failwatch_moonraker.predictors.base.PredictorError`,
like an unreachable server: a dead child, a hang past ``timeout`` (the child is
killed) or a failed start is :class:`Unavailable`; a short or garbled reply is
:class:`BadResponse` (the child is killed: the stream is out of step); a
non-zero status is :class:`EngineStatusError` (the stream is still in step).
After a fault the next start waits 0, 1, 5, then 30 s (:data:`BACKOFF`).

This module knows nothing about any particular model: a backend gives an
:class:`EngineSpec` (how to start it, what to report) and an optional handshake.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from failwatch_moonraker.predictors.base import BadResponse, PredictorError, Unavailable

log = logging.getLogger("failwatch")
T = TypeVar("T")

HEADER = struct.Struct("<II")
BACKOFF: tuple[float, ...] = (0.0, 1.0, 5.0, 30.0)
#: Replies longer than this are garbage, not an answer (a frame's JSON is < 4 KiB).
MAX_REPLY = 16 * 1024 * 1024
#: A status this large is garbage too (engines use small numbers).
MAX_STATUS = 0xFFFF
STOP_GRACE = 3.0
PIPE_SIZE = 1 << 20  # Linux's default limit for an unprivileged process
STDERR_LINES = 20


_image_worker: concurrent.futures.ThreadPoolExecutor | None = None


async def off_loop(fn: Callable[..., T], *args: Any) -> T:
    """Run image work (decode, resize) on the one worker thread of the local engines.

    Never on the event loop; and always the same thread, so glibc keeps one heap
    for the frame buffers instead of one per pool thread (a few MB each), which
    keeps the daemon's RSS flat.
    """
    global _image_worker
    if _image_worker is None:
        _image_worker = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="failwatch-image")
    return await asyncio.get_running_loop().run_in_executor(_image_worker, fn, *args)


def pack_request(cmd: int, payload: bytes = b"") -> bytes:
    """One request frame."""
    return HEADER.pack(cmd, len(payload)) + payload


def pack_reply(status: int, payload: bytes = b"") -> bytes:
    """One reply frame (for workers written in Python and for tests)."""
    return HEADER.pack(status, len(payload)) + payload


#: A request's payload: bytes, or parts sent one after the other (no joining copy).
Payload = bytes | Sequence[bytes]


def serve(handlers: Mapping[int, Callable[[bytes], bytes]]) -> int:
    """The worker side of the framing, for an engine written in Python.

    Run as ``python -m failwatch_moonraker.predictors.local.<worker>``: reads requests
    on stdin until EOF (then returns 0, the exit status), answers each with
    ``handlers[cmd](payload)``; an unknown command is status 1, a handler's
    ``ValueError`` status 2 (bad payload), any other exception status 3. Blocking
    and single-threaded on purpose: one request at a time, as the supervisor sends.
    """
    import sys

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer

    def read(n: int) -> bytes | None:
        data = bytearray()
        while len(data) < n:
            chunk = stdin.read(n - len(data))
            if not chunk:
                return None
            data += chunk
        return bytes(data)

    while True:
        header = read(HEADER.size)
        if header is None:
            return 0
        cmd, length = HEADER.unpack(header)
        payload = read(length) if length else b""
        if payload is None:
            return 0
        handler = handlers.get(cmd)
        if handler is None:
            status, body = 1, f"unknown command {cmd}".encode()
        else:
            try:
                status, body = 0, handler(payload)
            except ValueError as exc:
                status, body = 2, str(exc).encode()
            except Exception as exc:  # reported to the supervisor, the worker goes on
                status, body = 3, f"{type(exc).__name__}: {exc}".encode()
        stdout.write(pack_reply(status, body))
        stdout.flush()


class EngineStatusError(BadResponse):
    """The engine answered with a non-zero status; the stream is still in step."""

    def __init__(self, message: str, status: int, payload: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.payload = payload


class EngineBackingOff(Unavailable):
    """Not restarted yet: the back-off after the last fault is still running."""


class EngineMissing(Unavailable):
    """The engine's files are not installed; the message says how to install them."""


@dataclass(frozen=True)
class EngineSpec:
    """How to start an engine and what to say about it."""

    argv: tuple[str, ...]
    cpus: tuple[int, ...] = ()  # CPU affinity; () = inherit (every CPU)
    nice: int = 10
    env: Mapping[str, str] | None = None  # None = inherit the daemon's environment
    #: Shown by check/status: package, version, runner, model, ...
    facts: Mapping[str, str] = field(default_factory=dict)
    #: What an exit code means when the engine stops by itself (e.g. {3: "model cannot load"}).
    exit_codes: Mapping[int, str] = field(default_factory=dict)


def _preexec(nice: int, cpus: Sequence[int]) -> Callable[[], None]:
    """Runs in the child before exec: lower its priority, pin it to ``cpus``."""

    def apply() -> None:
        try:
            current = os.getpriority(os.PRIO_PROCESS, 0)
            os.setpriority(os.PRIO_PROCESS, 0, max(nice, current))  # never raise priority
        except OSError:
            pass
        if cpus:
            os.sched_setaffinity(0, cpus)

    return apply


def rss_bytes(pid: int) -> tuple[int, int] | None:
    """(current, peak) resident memory of ``pid`` from /proc, or None."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            parts = rest.split()
            if parts and parts[0].isdigit():
                values[key] = int(parts[0]) * 1024
    if "VmRSS" not in values:
        return None
    return values["VmRSS"], values.get("VmHWM", values["VmRSS"])


def niceness(pid: int) -> int | None:
    """The nice value ``pid`` really runs at (the engine may set its own)."""
    try:
        return os.getpriority(os.PRIO_PROCESS, pid)
    except OSError:
        return None


def _widen_pipe(proc: asyncio.subprocess.Process) -> None:
    """Let a whole frame fit in the pipe to the engine: asyncio then buffers no copy of it."""
    import fcntl

    transport = proc.stdin.transport if proc.stdin is not None else None
    pipe = transport.get_extra_info("pipe") if transport is not None else None
    if pipe is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(pipe.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_SIZE)


class EngineProcess:
    """One running child: raw framed requests. Owned by :class:`LocalEngine`."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, spec: EngineSpec) -> None:
        self.name = name
        self.proc = proc
        self.spec = spec
        self.stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self._stderr_task = asyncio.create_task(self._read_stderr(), name=f"{name}-stderr")
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        with contextlib.suppress(Exception):
            while line := await self.proc.stderr.readline():
                text = line.decode("utf-8", "replace").rstrip()
                if text:
                    self.stderr.append(text)
                    log.debug("%s: %s", self.name, text)

    def exit_reason(self) -> str:
        """'exited with code 3 (model cannot load): <last stderr line>' or similar."""
        code = self.proc.returncode
        if code is None:
            return "is still running"
        if code < 0:
            import signal

            try:
                what = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                what = f"was killed by signal {-code}"
        else:
            meaning = self.spec.exit_codes.get(code)
            what = f"exited with code {code}" + (f" ({meaning})" if meaning else "")
        if self.stderr:
            what += f": {self.stderr[-1][:300]}"
        return what

    async def wait_exit(self, timeout: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError, ProcessLookupError):
            await asyncio.wait_for(self.proc.wait(), timeout)
        if self.alive:
            return
        # Let the last stderr lines in: they usually say why.
        with contextlib.suppress(asyncio.TimeoutError, Exception):
            await asyncio.wait_for(asyncio.shield(self._stderr_task), 0.5)

    async def kill(self) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await self.wait_exit(5.0)
        self._stderr_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._stderr_task

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Close stdin (every engine exits 0 on EOF), wait, then kill."""
        if self.alive and self.proc.stdin is not None:
            with contextlib.suppress(Exception):
                self.proc.stdin.close()
            await self.wait_exit(grace)
        await self.kill()

    async def request(self, cmd: int, payload: Payload, timeout: float) -> bytes:
        """Send one request, return the OK reply's payload; faults as documented above."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if not self.alive:
            raise Unavailable(f"{self.name} {self.exit_reason()}")
        try:
            return await asyncio.wait_for(self._exchange(cmd, payload), timeout)
        except asyncio.TimeoutError:
            await self.kill()
            raise Unavailable(f"{self.name} did not answer within {timeout:g} s; "
                              "killed it (it is restarted for a later frame)") from None

    async def _exchange(self, cmd: int, payload: Payload) -> bytes:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        parts = (payload,) if isinstance(payload, (bytes, bytearray, memoryview)) else payload
        try:
            # The parts go out one by one: a frame is not copied into one buffer first.
            self.proc.stdin.write(HEADER.pack(cmd, sum(len(p) for p in parts)))
            for part in parts:
                self.proc.stdin.write(part)
            await self.proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError, RuntimeError) as exc:
            await self.wait_exit(2.0)
            reason = self.exit_reason() if not self.alive else f"closed its input ({exc})"
            await self.kill()
            raise Unavailable(f"{self.name} {reason}") from None
        header = await self._read(HEADER.size, "reply header", first=True)
        status, length = HEADER.unpack(header)
        if status > MAX_STATUS or length > MAX_REPLY:
            await self.kill()
            raise BadResponse(f"{self.name} sent a garbled reply (status {status}, length "
                              f"{length}); killed it")
        body = await self._read(length, "reply") if length else b""
        if status != 0:
            text = body[:200].decode("utf-8", "replace")
            raise EngineStatusError(f"{self.name} answered status {status}"
                                    + (f": {text}" if text else ""), status, body)
        return body

    async def _read(self, n: int, what: str, first: bool = False) -> bytes:
        assert self.proc.stdout is not None
        try:
            return await self.proc.stdout.readexactly(n)
        except asyncio.IncompleteReadError as exc:
            got = len(exc.partial)
            await self.wait_exit(2.0)
            reason = self.exit_reason() if not self.alive else "closed its output"
            await self.kill()
            if first and got == 0:
                raise Unavailable(f"{self.name} {reason}") from None
            raise BadResponse(f"{self.name} sent a short {what} ({got} of {n} bytes) and "
                              f"{reason}") from None


Handshake = Callable[[EngineProcess], Awaitable[Mapping[str, Any] | None]]
SpecSource = EngineSpec | Callable[[], EngineSpec]


class LocalEngine:
    """Starts, feeds, restarts and unloads one engine child.

    ``spec`` may be a callable (run in a thread at each start: it may look for
    files and hash them); its :class:`PredictorError` reaches the caller as is.
    ``handshake`` runs after each spawn, with ``start_timeout`` for all of it;
    what it returns is added to :meth:`facts`.
    """

    def __init__(self, name: str, spec: SpecSource, *, timeout: float,
                 start_timeout: float = 120.0, unload_after: float = 300.0,
                 handshake: Handshake | None = None,
                 backoff: Sequence[float] = BACKOFF,
                 clock: Callable[[], float] = time.monotonic,
                 facts: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self._spec_source = spec
        self.timeout = timeout
        self.start_timeout = start_timeout
        self.unload_after = unload_after
        self._handshake = handshake
        self._backoff = tuple(backoff) or (0.0,)
        self._clock = clock
        self._lock = asyncio.Lock()
        self._child: EngineProcess | None = None
        self._spec: EngineSpec | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._unload: asyncio.Task[None] | None = None
        self._stopping = False
        self._printing = False
        self._failures = 0
        self._next_start = 0.0
        self.last_error = ""
        self.starts = 0
        self.startup_s: float | None = None
        self.last_ms: float | None = None
        self.handshake_facts: dict[str, Any] = {}
        self._base_facts = dict(facts or {})  # known before the first start (package)

    # -- state -----------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._child is not None and self._child.alive

    @property
    def pid(self) -> int | None:
        return self._child.pid if self.running and self._child else None

    def facts(self) -> dict[str, Any]:
        """What check and FAILWATCH_STATUS show about the engine."""
        spec = self._spec
        out: dict[str, Any] = dict(self._base_facts)
        out.update(spec.facts if spec else {})
        out.update(self.handshake_facts)
        state = "running" if self.running else "stopped"
        wait = self._next_start - self._clock()
        if not self.running and self._failures and wait > 0:
            state = f"restarting in {wait:.0f} s"
        out.update(state=state, pid=self.pid, starts=self.starts,
                   startup_s=self.startup_s, last_ms=self.last_ms,
                   last_error=self.last_error or None,
                   nice=spec.nice if spec else None,
                   cpus=",".join(map(str, spec.cpus)) if spec and spec.cpus else "all")
        if self.running and self._child:
            out["nice"] = niceness(self._child.pid)
        rss = rss_bytes(self._child.pid) if self.running and self._child else None
        out["rss_mb"] = round(rss[0] / 2**20, 1) if rss else None
        out["peak_rss_mb"] = round(rss[1] / 2**20, 1) if rss else None
        return out

    def summary(self) -> str:
        """One line for the console and logs."""
        f = self.facts()
        parts = [str(f.get("package") or self.name)]
        if f.get("version"):
            parts[0] += f" {f['version']}"
        parts.append(str(f["state"]))
        if f.get("startup_s") is not None:
            parts.append(f"started in {f['startup_s']:.2f} s")
        if f.get("last_ms") is not None:
            parts.append(f"{f['last_ms']:.0f} ms/frame")
        if f.get("rss_mb") is not None:
            parts.append(f"RSS {f['rss_mb']:.0f} MB")
        if f.get("last_error") and not self.running:
            parts.append(f"last error: {f['last_error']}")
        return ", ".join(parts)

    # -- requests --------------------------------------------------------------

    async def request(self, cmd: int, payload: Payload = b"", timeout: float | None = None,
                      *, timed: bool = True) -> bytes:
        """One request to the engine, started first if needed."""
        async with self._lock:
            self._cancel_unload()
            try:
                child = await self._ensure_started()
                began = time.perf_counter()
                reply = await child.request(cmd, payload, timeout or self.timeout)
            except EngineBackingOff:
                raise
            except EngineStatusError as exc:
                self.last_error = str(exc)
                raise
            except PredictorError as exc:
                await self._failed(str(exc))
                raise
            finally:
                if not self._printing:
                    self._arm_unload()
            if timed:
                self.last_ms = (time.perf_counter() - began) * 1000.0
            if self._failures:
                log.info("%s: working again after %d fault(s)", self.name, self._failures)
            self._failures = 0
            return reply

    async def _ensure_started(self) -> EngineProcess:
        if self._child is not None and self._child.alive:
            return self._child
        if self._child is not None:  # died since the last request
            child, self._child = self._child, None
            await child.kill()
        wait = self._next_start - self._clock()
        if wait > 0:
            # The last fault's own words, unchanged while it lasts: the daemon's fault
            # log stays quiet about a fault it already reported (facts() has the wait).
            raise EngineBackingOff(self.last_error or f"{self.name} is being restarted")
        return await self._start()

    async def _start(self) -> EngineProcess:
        source = self._spec_source
        spec = source if isinstance(source, EngineSpec) else await asyncio.to_thread(source)
        self._spec = spec
        began = time.perf_counter()
        try:
            proc = await asyncio.create_subprocess_exec(
                *spec.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=dict(spec.env) if spec.env is not None
                else None, preexec_fn=_preexec(spec.nice, spec.cpus), start_new_session=True)
        except (OSError, ValueError) as exc:
            raise Unavailable(f"{self.name}: cannot start {spec.argv[0]}: {exc}") from None
        except Exception as exc:  # SubprocessError from the preexec (affinity refused)
            raise Unavailable(f"{self.name}: cannot start {spec.argv[0]}: {exc}") from None
        _widen_pipe(proc)
        child = EngineProcess(self.name, proc, spec)
        self.starts += 1
        log.info("%s: started (pid %d, nice %d, CPUs %s)", self.name, proc.pid, spec.nice,
                 ",".join(map(str, spec.cpus)) or "all")
        if self._handshake is not None:
            try:
                facts = await asyncio.wait_for(self._handshake(child), self.start_timeout)
            except asyncio.TimeoutError:
                await child.kill()
                raise Unavailable(f"{self.name} was not ready within {self.start_timeout:g} s;"
                                  " killed it") from None
            except PredictorError as exc:
                await child.kill()
                if isinstance(exc, EngineStatusError):
                    raise BadResponse(f"{exc} (during start-up)") from None
                raise
            except BaseException:
                await child.kill()
                raise
            self.handshake_facts = dict(facts or {})
        self.startup_s = time.perf_counter() - began
        self._child = child
        self._stopping = False
        self._watcher = asyncio.create_task(self._watch(child), name=f"{self.name}-watch")
        log.info("%s: ready in %.2f s", self.name, self.startup_s)
        return child

    async def _watch(self, child: EngineProcess) -> None:
        """Say at once when the engine dies by itself (killed, out of memory, crashed)."""
        await child.proc.wait()
        if self._stopping or child is not self._child or self._lock.locked():
            return  # stopped on purpose, or the request in flight reports it
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(child._stderr_task), 0.5)
        reason = f"{self.name} {child.exit_reason()}"
        log.warning("%s; restarted for the next frame, print not touched", reason)
        self._note_failure(reason)

    async def _failed(self, message: str) -> None:
        child, self._child = self._child, None
        if child is not None:
            self._stopping = True
            await child.kill()
        self._note_failure(message)

    def _note_failure(self, message: str) -> None:
        self.last_error = message
        delay = self._backoff[min(self._failures, len(self._backoff) - 1)]
        self._failures += 1
        self._next_start = self._clock() + delay

    # -- life cycle --------------------------------------------------------------

    async def print_started(self) -> None:
        """A print runs: keep the engine (it starts with the first frame)."""
        self._printing = True
        self._cancel_unload()

    async def print_ended(self) -> None:
        """The print is over: stop the engine ``unload_after`` s from now."""
        self._printing = False
        self._arm_unload()

    def _arm_unload(self) -> None:
        self._cancel_unload()
        if self._child is None:
            return
        self._unload = asyncio.create_task(self._unload_later(), name=f"{self.name}-unload")

    def _cancel_unload(self) -> None:
        task, self._unload = self._unload, None
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    async def _unload_later(self) -> None:
        await asyncio.sleep(self.unload_after)
        if self.running:
            log.info("%s: stopped %g s after the print (memory freed until the next print)",
                     self.name, self.unload_after)
        await self.stop()

    async def stop(self) -> None:
        """Stop the engine now (waits for a request in flight)."""
        async with self._lock:
            child = self._child
            if child is None:
                return
            self._stopping = True
            await child.stop()
            self._child = None
            if self._watcher is not None:
                self._watcher.cancel()

    async def restart(self, reason: str) -> None:
        """Stop now; the next request starts it again (e.g. its start arguments changed)."""
        if self.running:
            log.info("%s: restarting: %s", self.name, reason)
        await self.stop()

    async def close(self) -> None:
        self._cancel_unload()
        await self.stop()
