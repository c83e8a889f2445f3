"""Farm mode: one process watching every ``[printer NAME]`` of the config.

Each printer gets its own :class:`~failwatch_moonraker.daemon.Daemon` (its own
Moonraker connection, camera, predictor, statistics and state file) running as
its own task; they share one aiohttp session (one connection pool, one DNS
cache). Isolation is by construction: every wait in a daemon is a coroutine
wait with its own timeout, so one printer's dead camera, vanished Moonraker or
refused credentials only ever back off that printer's own loop. A daemon that
crashes is logged and restarted on its own after a pause; the others carry on.

Every log line emitted on a printer's behalf starts with ``[NAME]``: the name
rides in a context variable that each printer's task (and every task it spawns)
inherits, so the modules that log need no change.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import io
import logging
from typing import Any, TextIO

import aiohttp

from failwatch_moonraker.config import Config
from failwatch_moonraker.daemon import Daemon

log = logging.getLogger("failwatch")

RESTART_DELAY = 10.0
CURRENT_PRINTER: contextvars.ContextVar[str] = contextvars.ContextVar(
    "failwatch_printer", default="")
_prefix_installed = False


def install_log_prefix() -> None:
    """Prefix the records made on a printer's behalf with ``[NAME]`` (idempotent)."""
    global _prefix_installed
    if _prefix_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        name = CURRENT_PRINTER.get()
        if name:
            record.printer = name
            record.msg = f"[{name}] {record.msg}"
        return record

    logging.setLogRecordFactory(factory)
    _prefix_installed = True


def printer_context(name: str) -> contextvars.Context:
    """A copy of the current context in which log lines name ``name``."""
    ctx = contextvars.copy_context()
    ctx.run(CURRENT_PRINTER.set, name)
    return ctx


class Farm:
    """Runs one Daemon per printer until :meth:`stop`."""

    def __init__(self, config: Config, *, restart_delay: float = RESTART_DELAY) -> None:
        if not config.printers:
            raise ValueError("farm mode needs [printer NAME] sections")
        self.config = config
        self.restart_delay = restart_delay
        self.daemons: dict[str, Daemon] = {}
        self.restarts: dict[str, int] = {p.name: 0 for p in config.printers}
        self._stop = asyncio.Event()
        self._started = asyncio.Event()
        install_log_prefix()

    @property
    def started(self) -> asyncio.Event:
        """Set once every printer's daemon exists (for tests and the bench)."""
        return self._started

    def stop(self) -> None:
        self._stop.set()
        for daemon in self.daemons.values():
            daemon.stop()

    async def run(self) -> None:
        printers = self.config.printers
        # Room for every printer's camera, predictor and notifier connections at once,
        # so that a hung server of one printer never queues another's requests.
        connector = aiohttp.TCPConnector(limit=max(100, 4 * len(printers)))
        timeout = aiohttp.ClientTimeout(total=None)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            log.info("farm: watching %d printers: %s", len(printers),
                     ", ".join(p.name for p in printers))
            tasks = []
            for printer in printers:
                ctx = printer_context(printer.name)
                daemon = ctx.run(Daemon, printer, http=http)
                self.daemons[printer.name] = daemon
                # Created inside ctx, the task (and all it spawns) runs in a copy of it.
                tasks.append(ctx.run(asyncio.create_task, self._supervise(printer, daemon, http),
                                     name=f"printer-{printer.name}"))
            self._started.set()
            try:
                await self._stop.wait()
            finally:
                for daemon in self.daemons.values():
                    daemon.stop()
                done, pending = await asyncio.wait(tasks, timeout=30)
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.wait(pending, timeout=5)
                log.info("farm: all printers stopped")

    async def _supervise(self, printer: Config, daemon: Daemon,
                         http: aiohttp.ClientSession) -> None:
        """Run one printer's daemon; restart it if it ever crashes."""
        while True:
            try:
                await daemon.run()
            except Exception:
                log.exception("crashed; restarting in %g s (the other printers carry on)",
                              self.restart_delay)
            if self._stop.is_set():
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.restart_delay)
            if self._stop.is_set():
                return
            self.restarts[printer.name] += 1
            daemon = Daemon(printer, http=http)
            self.daemons[printer.name] = daemon


async def check_farm(config: Config, out: TextIO, timeout: float = 20.0) -> int:
    """``failwatch-moonraker check`` for every printer, side by side, reports in order."""
    from failwatch_moonraker.checkup import run_check
    from failwatch_moonraker.secrets import scrub

    async def one(printer: Config) -> tuple[int, str]:
        buffer = io.StringIO()
        try:
            status = await run_check(printer, buffer, timeout)
        except Exception as exc:  # one printer's surprise must not hide the others
            print(f"[FAIL] check: {exc.__class__.__name__}: {exc}", file=buffer)
            status = 1
        return status, buffer.getvalue()

    results = await asyncio.gather(*(one(p) for p in config.printers))
    failing = []
    for printer, (status, text) in zip(config.printers, results, strict=True):
        print(f"== [printer {printer.name}] ==", file=out)
        out.write(scrub(text))  # the reports are; a surprise's text may not be
        print(file=out)
        if status:
            failing.append(printer.name)
    total = len(config.printers)
    if failing:
        print(f"Farm: {total - len(failing)} of {total} printers passed every check; "
              f"failing: {', '.join(failing)}.", file=out, flush=True)
        return 1
    print(f"Farm: all {total} printers passed every check.", file=out, flush=True)
    return 0
