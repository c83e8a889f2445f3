"""Per-print recordings of every analysed frame, written as the daemon watches.

The format (one JSON line per frame, each camera's statistics) and its reader are
:mod:`~failwatch_moonraker.tools.recording`.

Why a thread: the daemon must never wait for a disk. :meth:`Recorder.frame`
only puts the frame on a bounded queue; one writer thread does all file I/O
and retention. A failing folder is logged once and recording pauses (until
the next print) while watching goes on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from failwatch_moonraker.config import RecordConfig
from failwatch_moonraker.core.session import FrameOutcome, WatchSession
from failwatch_moonraker.predictors import Prediction
from failwatch_moonraker.tools.recording import (
    FORMAT,
    FRAMES_SUFFIX,
    SUFFIX,
    dumps,
    file_stem,
    format_version,
    snapshot_name,
    stats_fields,
)

log = logging.getLogger("failwatch.record")

MAX_PENDING = 2000  # frames waiting for the writer; beyond this they are dropped
MAX_PENDING_JPEG = 64 * 1024 * 1024  # bytes of JPEG waiting; beyond this JPEGs are skipped
CLOSE_TIMEOUT = 1.5  # seconds close() may take: SIGTERM to exit stays under 2 s


@dataclass(slots=True)
class _Item:
    """One frame on its way to the writer thread; nothing in it is mutated later."""

    print_id: str
    printer: str
    file: str
    start_time: float
    params: dict[str, Any]
    before: dict[str, dict[str, Any]]  # each camera's statistics before this frame
    line: dict[str, Any]
    resumed_at: float | None
    jpeg: bytes | None
    gap: bool
    params_changed: bool


class Recorder:
    """Records the frames the daemon judged; see the module docstring."""

    def __init__(self, config: RecordConfig, session: WatchSession, printer: str) -> None:
        self.config = config
        self.folder = Path(config.path)
        self.printer = printer
        # Per camera, the statistics before its next frame: as loaded (a restart),
        # then its previous frame's. Replay needs them to start exactly where the
        # daemon was.
        self._before = {name: session.track(name).stats.to_dict() for name in session.cameras}
        self._resumed_at = session.resumed_at
        self._queue: queue.Queue[_Item | None] = queue.Queue(MAX_PENDING)
        self._thread: threading.Thread | None = None
        self._pending_jpeg = 0
        self._lock = threading.Lock()
        self._gap = False
        self._dropped = 0
        self._params: dict[str, Any] | None = None
        self._writer = _Writer(self)

    # -- event loop side: never blocks --------------------------------------

    def frame(self, now: float, prediction: Prediction, outcome: FrameOutcome,
              session: WatchSession, predictor: str, jpeg: bytes | None,
              print_stats: Mapping[str, Any]) -> None:
        """Queue the frame just folded into ``session``; returns at once."""
        print_id = session.print_id
        camera = outcome.camera
        try:
            track = session.track(camera)
        except ValueError:  # a camera the session does not know: nothing to record
            log.debug("recording: frame of unknown camera %r skipped", camera)
            return
        after = track.stats.to_dict()
        own = self._before.get(camera, after)
        self._before[camera] = after
        if print_id is None:
            return
        if after["prediction_num"] == 1:  # a new print: its own figures start at zero
            own = {**own, "p": 0.0, "ewm_mean": 0.0, "rolling_mean_short": 0.0,
                   "prediction_num": 0}
        # The other cameras had no frame since their last one: their statistics now
        # are the ones their next frame starts from.
        before = {name: own if name == camera else session.track(name).stats.to_dict()
                  for name in session.cameras}
        resumed = session.resumed_at
        resumed_at = resumed if resumed is not None and resumed != self._resumed_at else None
        self._resumed_at = resumed
        line: dict[str, Any] = {
            "t": now,
            "p": prediction.p,
            "detections": [[c, list(box)] for c, box in prediction.detections],
            "predictor": predictor,
            "stats": after,
            "level": str(outcome.level),
        }
        if camera:
            line["camera"] = camera
            line["seen"] = str(outcome.seen)
        if outcome.fire is not None:
            line["fire"] = str(outcome.fire)
        duration = print_stats.get("total_duration")
        start = now - float(duration) if isinstance(duration, (int, float)) and \
            not isinstance(duration, bool) and duration >= 0 else now
        keep_jpeg = None
        if self.config.frames and jpeg is not None:
            with self._lock:
                if self._pending_jpeg + len(jpeg) <= MAX_PENDING_JPEG:
                    self._pending_jpeg += len(jpeg)
                    keep_jpeg = jpeg
        params = params_of(session)
        changed = params != self._params
        self._params = params
        item = _Item(print_id, self.printer, str(print_stats.get("filename") or ""), start,
                     params, before, line, resumed_at, keep_jpeg, self._gap, changed)
        self._start_thread()
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._release(item)
            self._dropped += 1
            if self._dropped == 1:
                log.warning("recording: the disk is too slow, %d frames waiting; frames are "
                            "dropped from the recording until it catches up (watching goes on)",
                            MAX_PENDING)
            self._gap = True
            return
        self._gap = False
        self._dropped = 0

    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._writer.run, name="failwatch-record",
                                            daemon=True)
            self._thread.start()

    def _release(self, item: _Item) -> None:
        if item.jpeg is not None:
            with self._lock:
                self._pending_jpeg -= len(item.jpeg)

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Write what is queued and stop the writer (off the event loop), within ``timeout``.

        Shutdown must fit in systemd's and the user's patience: what is still queued
        then is dropped (the thread is a daemon thread and dies with the process).
        """
        import asyncio

        if self._thread is not None:
            await asyncio.to_thread(self._stop, timeout)

    def _stop(self, timeout: float) -> None:
        thread = self._thread
        if thread is None:
            return
        deadline = time.monotonic() + timeout
        if thread.is_alive():
            try:
                self._queue.put(None, timeout=max(0.0, deadline - time.monotonic()))
            except queue.Full:
                log.warning("recording: %d frame(s) not written at shutdown",
                            self._queue.qsize())
            thread.join(max(0.0, deadline - time.monotonic()))
        self._thread = None

    def flush(self, timeout: float = 5.0) -> None:
        """Block until every queued frame is written (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)


def params_of(session: WatchSession) -> dict[str, Any]:
    """The [detection] settings a session runs with, by option name."""
    p = session.params
    return {
        "sensitivity": p.policy.sensitivity,
        "ewm_span": p.stats.ewm_span,
        "short_window": p.stats.short_window,
        "long_window": p.stats.long_window,
        "threshold_low": p.policy.threshold_low,
        "threshold_high": p.policy.threshold_high,
        "short_multiple": p.policy.short_multiple,
        "escalating_factor": p.policy.escalating_factor,
        "safe_frames": p.policy.safe_frames,
        "resume_cooldown": p.resume_cooldown,
        "warning_cooldown": p.warning_cooldown,
        "policy": getattr(p.policy, "kind", "obico"),  # replay and tune model "obico"
    }


class _Writer:
    """The writer thread's state: the open recording, sizes, the pause after an error."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.config = recorder.config
        self.folder = recorder.folder
        self.handle: IO[str] | None = None
        self.open_id: str | None = None
        self.stem = ""
        self.paused_for: str | None = None  # print id recording failed for
        self.error_logged = False
        self.total = 0  # bytes in the folder, kept up to date after a scan
        self.own = 0  # bytes of the open print
        self.too_big = False

    def run(self) -> None:
        q = self.recorder._queue
        while True:
            item = q.get()
            try:
                if item is None:
                    self.close()
                    return
                self.write(item)
            except Exception:  # write() catches everything; this is the last line of defence
                log.exception("recording: unexpected error in the writer")
            finally:
                if item is not None:
                    self.recorder._release(item)
                q.task_done()

    def close(self) -> None:
        if self.handle is not None:
            with contextlib.suppress(OSError):
                self.handle.close()
        self.handle = None
        self.open_id = None

    def write(self, item: _Item) -> None:
        if self.paused_for is not None:
            if item.print_id == self.paused_for:
                return
            self.paused_for = None  # a new print: try the folder again
        try:
            self._write(item)
        except OSError as exc:
            self._pause(item, f"cannot write to the recordings folder {self.folder}: "
                        f"{exc.strerror or exc}", "Check [record] path in failwatch.cfg and "
                        "the free space.")
            return
        except Exception as exc:  # anything else (a NaN in a frame, a bug): never the thread
            self._pause(item, f"cannot record a frame of print {item.print_id[:80]} "
                        f"({exc.__class__.__name__}: {str(exc)[:200]})", "", trace=True)
            return
        if self.error_logged:
            self.error_logged = False
            log.info("recording: writing to %s again", self.folder)

    def _pause(self, item: _Item, what: str, advice: str, trace: bool = False) -> None:
        """Log once, stop recording this print; the next print tries again."""
        with contextlib.suppress(Exception):
            self.close()
        self.paused_for = item.print_id
        if not self.error_logged:
            self.error_logged = True
            log.error("recording: %s; recording paused until the next print (watching goes "
                      "on).%s", what, f" {advice}" if advice else "", exc_info=trace)
        else:
            log.debug("recording: still failing: %s", what)

    def _write(self, item: _Item) -> None:
        if item.print_id != self.open_id:
            self._open(item)
        elif item.gap:
            self._line({"type": "restart", "t": item.line["t"], **stats_fields(item.before),
                        "params": item.params})
        elif item.params_changed:
            self._line({"type": "settings", "t": item.line["t"], "params": item.params})
        if self.too_big:
            return
        assert self.handle is not None
        if item.resumed_at is not None:
            self._line({"type": "resume", "t": item.resumed_at})
        self._line(item.line)
        if item.jpeg is not None:
            frames = self.folder / (self.stem + FRAMES_SUFFIX)
            frames.mkdir(exist_ok=True)
            number = int(item.line["stats"]["prediction_num"])
            (frames / snapshot_name(number, item.line.get("camera", ""))).write_bytes(item.jpeg)
            self._grew(len(item.jpeg))
        self.handle.flush()

    def _line(self, obj: dict[str, Any]) -> None:
        assert self.handle is not None
        text = dumps(obj) + "\n"
        self.handle.write(text)
        self._grew(len(text.encode("utf-8")))

    def _grew(self, size: int) -> None:
        self.total += size
        self.own += size
        if self.total > self.config.max_size:
            self.prune()
            if self.own > self.config.max_size and not self.too_big:
                self.too_big = True
                log.warning("recording: print %s alone reached [record] max_size (%d MiB); "
                            "the rest of it is not recorded", self.open_id,
                            self.config.max_size // (1024 * 1024))

    def _open(self, item: _Item) -> None:
        self.close()
        self.too_big = False
        self.folder.mkdir(parents=True, exist_ok=True)
        self.stem = file_stem(item.print_id)
        path = self.folder / (self.stem + SUFFIX)
        exists = path.exists() and path.stat().st_size > 0
        self.handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
        self.open_id = item.print_id
        if exists:
            self._line({"type": "restart", "t": item.line["t"], **stats_fields(item.before),
                        "params": item.params})
        else:
            self._line({"type": "header", "format": FORMAT,
                        "version": format_version(item.before), "print_id": item.print_id,
                        "printer": item.printer,
                        "file": item.file, "start_time": item.start_time,
                        **stats_fields(item.before), "params": item.params})
            log.info("recording print %s to %s", item.print_id, path)
        self.prune()

    def prune(self) -> None:
        """Delete the oldest other prints until the count and size limits hold."""
        if self.handle is not None:
            self.handle.flush()  # so that the scan sees every byte written
        prints: dict[str, list[Path]] = {}
        sizes: dict[str, int] = {}
        times: dict[str, float] = {}
        for entry in os.scandir(self.folder):
            name = entry.name
            if name.endswith(SUFFIX) and entry.is_file():
                stem = name[: -len(SUFFIX)]
                stat = entry.stat()
                times[stem] = stat.st_mtime
            elif name.endswith(FRAMES_SUFFIX) and entry.is_dir():
                stem = name[: -len(FRAMES_SUFFIX)]
            else:
                continue
            prints.setdefault(stem, []).append(Path(entry.path))
            sizes[stem] = sizes.get(stem, 0) + _size(Path(entry.path))
        self.total = sum(sizes.values())
        self.own = sizes.get(self.stem, 0)
        others = sorted((s for s in prints if s != self.stem), key=lambda s: times.get(s, 0.0))
        count = len(times) if self.stem in times else len(times) + 1
        while others and (count > self.config.max_prints or self.total > self.config.max_size):
            stem = others.pop(0)
            for path in prints[stem]:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
            self.total -= sizes[stem]
            if stem in times:
                count -= 1
            log.info("recording: deleted the oldest recording %s ([record] max_prints/max_size)",
                     stem)


def _size(path: Path) -> int:
    if not path.is_dir():
        return path.stat().st_size
    total = 0
    for entry in os.scandir(path):
        with contextlib.suppress(OSError):
            total += entry.stat().st_size
    return total
