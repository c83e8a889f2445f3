"""Per-print recordings of every analysed frame, and their reader.

A recording is ``<print id>.jsonl`` in the ``[record]`` folder, one compact
JSON object per line:

- first a header: ``{"type": "header", "format": FORMAT, "version": 1,
  "print_id", "printer", "file", "start_time", "stats", "params"}`` where
  ``stats`` are the statistics *before* the first recorded frame (the
  printer's lifetime baseline, and the print's own figures when recording
  began mid-print) and ``params`` the [detection] settings in force;
- then one line per frame: ``{"t", "p", "detections", "predictor", "stats",
  "level"}`` (plus ``"fire"`` when actions ran), ``stats`` after the frame;
- ``{"type": "resume", "t"}`` when the user resumed the print (it starts
  ``resume_cooldown``), written before the next frame;
- ``{"type": "restart", "t", "stats", "params"}`` when failwatch restarted (or
  frames were dropped) mid-print: the file is appended to, ``stats`` as before
  the next frame;
- ``{"type": "settings", "t", "params"}`` when the [detection] settings changed
  mid-print (e.g. the sensitivity macro).

With named cameras (``[camera NAME]``) each camera keeps its own statistics:
the header and restart lines hold ``"cameras": {NAME: {"stats": ...}}`` (in
the printer's camera order) instead of ``stats``, and each frame line names
its ``"camera"`` and adds ``"seen"``, that camera's own verdict (``level`` is
the printer's, the worst camera's); the header says ``"version": 2``. The single
unnamed ``[camera]`` writes exactly the layout above, version 1. A reader refuses
a version above the newest it knows, rather than misread it.

With ``frames`` on, ``<print id>.frames/<frame number>.jpg`` holds each frame
(``<frame number>-<camera>.jpg`` for a named camera; the number is that
camera's own frame count).

Why a thread: the daemon must never wait for a disk. :meth:`Recorder.frame`
only puts the frame on a bounded queue; one writer thread does all file I/O
and retention. A failing folder is logged once and recording pauses (until
the next print) while watching goes on.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import queue
import re
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from failwatch_moonraker.config import RecordConfig
from failwatch_moonraker.core.session import FrameOutcome, WatchSession
from failwatch_moonraker.core.stats import MAX_SCORE, is_score
from failwatch_moonraker.predictors import Prediction

log = logging.getLogger("failwatch.record")

FORMAT = "failwatch-recording"
VERSION = 1  # the single unnamed camera: the layout every reader knows
VERSION_CAMERAS = 2  # named cameras: "cameras" in the header, "camera" in frames
SUFFIX = ".jsonl"
FRAMES_SUFFIX = ".frames"
MAX_PENDING = 2000  # frames waiting for the writer; beyond this they are dropped
MAX_PENDING_JPEG = 64 * 1024 * 1024  # bytes of JPEG waiting; beyond this JPEGs are skipped
CLOSE_TIMEOUT = 1.5  # seconds close() may take: SIGTERM to exit stays under 2 s

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def file_stem(print_id: str) -> str:
    """A file name for a print id (Moonraker's are hex; fallback ids hold '/' and '@')."""
    stem = _UNSAFE.sub("_", print_id).strip(".") or "print"
    return stem[:120]


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


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


def format_version(before: Mapping[str, object]) -> int:
    """The header's version: 1 for the single unnamed camera, 2 with named ones."""
    return VERSION if list(before) == [""] else VERSION_CAMERAS


def stats_fields(before: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The header's (and restart line's) statistics: ``stats`` for the single unnamed
    camera, as always; ``cameras`` by name otherwise."""
    if list(before) == [""]:
        return {"stats": before[""]}
    return {"cameras": {name: {"stats": stats} for name, stats in before.items()}}


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
        text = _dumps(obj) + "\n"
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


def snapshot_name(number: int, camera: str = "") -> str:
    """``000012.jpg``, or ``000012-side.jpg`` for the named camera ``side``."""
    if not camera:
        return f"{number:06d}.jpg"
    return f"{number:06d}-{_UNSAFE.sub('_', camera)[:60]}.jpg"


def _size(path: Path) -> int:
    if not path.is_dir():
        return path.stat().st_size
    total = 0
    for entry in os.scandir(path):
        with contextlib.suppress(OSError):
            total += entry.stat().st_size
    return total


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


class RecordingError(Exception):
    """A file that is not a recording (or a CSV of time,p)."""


@dataclass(slots=True)
class RecordedFrame:
    t: float
    p: float
    level: str | None = None  # what the daemon decided (None in a CSV)
    fire: str | None = None
    stats: dict[str, Any] | None = None
    resumed_at: float | None = None  # a user resume just before this frame
    params: dict[str, Any] | None = None  # settings changed (or restated) before this frame
    camera: str = ""  # the camera that took it ("" for the single unnamed camera)
    seen: str | None = None  # that camera's own verdict (``level`` is the printer's)


@dataclass
class Recording:
    path: Path
    print_id: str
    printer: str = ""
    file: str = ""
    start_time: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)  # before the first frame
    params: dict[str, Any] = field(default_factory=dict)  # the daemon's [detection]
    frames: list[RecordedFrame] = field(default_factory=list)
    restarts: int = 0
    bad_lines: int = 0
    #: Named cameras, in the printer's order, each with its statistics before its first
    #: frame; empty for the single unnamed camera (whose are ``stats``).
    cameras: dict[str, dict[str, Any]] = field(default_factory=dict)

    def camera_names(self) -> list[str]:
        return list(self.cameras) if self.cameras else [""]

    def start_stats(self, camera: str = "") -> dict[str, Any]:
        """A camera's statistics before its first frame."""
        if not self.cameras:
            return self.stats
        return self.cameras.get(camera, {})

    def frames_of(self, camera: str) -> list[RecordedFrame]:
        return [f for f in self.frames if f.camera == camera]

    def title(self) -> str:
        what = self.file or self.path.name
        by = f" on {self.printer}" if self.printer else ""
        when = ""
        if self.start_time > 1e8:
            when = ", started " + time.strftime("%Y-%m-%d %H:%M", time.localtime(self.start_time))
        return f"{what} (print {self.print_id}{by}{when})"


def read_recording(path: str | os.PathLike[str]) -> Recording:
    """A ``.jsonl`` recording, or a CSV of ``time,p`` (seconds; header optional)."""
    file = Path(path)
    try:
        with open(file, encoding="utf-8") as handle:
            first = handle.readline()
            handle.seek(0)
            if first.lstrip().startswith("{"):
                return _read_jsonl(file, handle)
            return _read_csv(file, handle)
    except FileNotFoundError:
        raise RecordingError(f"{file}: no such file") from None
    except IsADirectoryError:
        raise RecordingError(f"{file}: is a folder; give one recording (.jsonl)") from None
    except UnicodeDecodeError:
        raise RecordingError(f"{file}: not a text file") from None
    except OSError as exc:
        raise RecordingError(f"{file}: cannot read: {exc.strerror or exc}") from None


def _num(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value) if math.isfinite(value) else None
        except OverflowError:  # an integer of hundreds of digits
            return None
    return None


def _camera_stats(value: Any) -> dict[str, dict[str, Any]]:
    """``{"NAME": {"stats": {...}}}`` of a header or restart line; anything else is skipped."""
    if not isinstance(value, dict):
        return {}
    found = {}
    for name, data in value.items():
        if isinstance(name, str) and name and len(name) <= 200:
            stats = data.get("stats") if isinstance(data, dict) else None
            found[name] = dict(stats) if isinstance(stats, dict) else {}
    return found


def _add_camera(rec: Recording, name: str, stats: dict[str, Any]) -> None:
    """A camera the header did not name; frames of the unnamed camera before it keep theirs."""
    if name in rec.cameras:
        return
    if not rec.cameras and rec.frames:
        rec.cameras[""] = dict(rec.stats)
    rec.cameras[name] = stats


def _read_jsonl(file: Path, handle: IO[str]) -> Recording:
    rec = Recording(path=file, print_id=file.stem)
    header_seen = False
    resumed: float | None = None
    params: dict[str, Any] | None = None
    for line in handle:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            rec.bad_lines += 1  # e.g. a line cut short by a full disk
            continue
        if not isinstance(obj, dict):
            rec.bad_lines += 1
            continue
        kind = obj.get("type")
        if kind == "header":
            if obj.get("format") != FORMAT:
                raise RecordingError(f"{file}: not a failwatch recording")
            version = obj.get("version", VERSION)
            if not isinstance(version, int) or isinstance(version, bool) \
                    or not VERSION <= version <= VERSION_CAMERAS:
                raise RecordingError(
                    f"{file}: recording format version {str(version)[:20]}; this "
                    f"failwatch-moonraker reads versions {VERSION} to {VERSION_CAMERAS} "
                    "(a newer failwatch-moonraker wrote it? upgrade to read it)")
            header_seen = True
            rec.print_id = str(obj.get("print_id") or rec.print_id)
            rec.printer = str(obj.get("printer") or "")
            rec.file = str(obj.get("file") or "")
            rec.start_time = _num(obj.get("start_time")) or 0.0
            rec.stats = dict(obj.get("stats") or {})
            rec.params = dict(obj.get("params") or {})
            rec.cameras = _camera_stats(obj.get("cameras"))
            if rec.cameras and not rec.stats:  # for what shows one baseline
                rec.stats = dict(next(iter(rec.cameras.values())))
        elif kind == "resume":
            resumed = _num(obj.get("t"))
        elif kind in ("restart", "settings"):
            rec.restarts += kind == "restart"
            if isinstance(obj.get("params"), dict):
                params = dict(obj["params"])
            for name, named in _camera_stats(obj.get("cameras")).items():
                _add_camera(rec, name, named)  # a camera added at a restart
        elif kind is None:
            t, p = _num(obj.get("t")), _num(obj.get("p"))
            if t is None or p is None or not is_score(p):  # the statistics would refuse it
                rec.bad_lines += 1
                continue
            stats = obj.get("stats")
            level = obj.get("level")
            fire = obj.get("fire")
            camera = obj.get("camera")
            camera = camera if isinstance(camera, str) and len(camera) <= 200 else ""
            seen = obj.get("seen")
            if camera not in rec.cameras and (camera or rec.cameras):
                # not in the header: the unnamed camera starts from the header's own
                # statistics, as does a first named camera (the daemon carries them on)
                _add_camera(rec, camera, dict(rec.stats) if not camera or not rec.cameras
                            and not rec.frames else {})
            rec.frames.append(RecordedFrame(
                t, p, level if isinstance(level, str) else None,
                fire if isinstance(fire, str) else None,
                stats if isinstance(stats, dict) else None, resumed, params, camera,
                seen if isinstance(seen, str) else None))
            resumed = params = None
    if not header_seen:
        raise RecordingError(f"{file}: no header line; not a failwatch recording")
    if not rec.start_time and rec.frames:
        rec.start_time = rec.frames[0].t
    return rec


def _read_csv(file: Path, handle: IO[str]) -> Recording:
    """``time,p`` rows. Times are seconds since the print started, or epoch seconds."""
    rec = Recording(path=file, print_id=file.stem)
    for number, row in enumerate(csv.reader(handle), 1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        try:
            t, p = float(row[0]), float(row[1])
        except (ValueError, IndexError):
            if number == 1:
                continue  # a header line
            raise RecordingError(f"{file}: line {number}: expected 'time,p' (two numbers), "
                                 f"got {','.join(row)[:60]!r}") from None
        if not (math.isfinite(t) and math.isfinite(p)):
            raise RecordingError(f"{file}: line {number}: not a finite number")
        if not is_score(p):
            raise RecordingError(f"{file}: line {number}: p must be a number from 0 to "
                                 f"{MAX_SCORE:g}, got {p:g}")
        rec.frames.append(RecordedFrame(t, p))
    if not rec.frames:
        raise RecordingError(f"{file}: no 'time,p' rows")
    first = rec.frames[0].t
    rec.start_time = first if first > 1e8 else 0.0
    return rec


def write_recording(path: str | os.PathLike[str], rec: Recording) -> Path:
    """Write ``rec`` in the recording format (synthetic prints, CSV conversions)."""
    file = Path(path)
    before = {name: rec.start_stats(name) for name in rec.camera_names()}
    with open(file, "w", encoding="utf-8") as handle:
        handle.write(_dumps({"type": "header", "format": FORMAT,
                             "version": format_version(before), "print_id": rec.print_id,
                             "printer": rec.printer, "file": rec.file,
                             "start_time": rec.start_time, **stats_fields(before),
                             "params": rec.params}) + "\n")
        for frame in rec.frames:
            if frame.resumed_at is not None:
                handle.write(_dumps({"type": "resume", "t": frame.resumed_at}) + "\n")
            line: dict[str, Any] = {"t": frame.t, "p": frame.p}
            if frame.level is not None:
                line["level"] = frame.level
            if frame.fire is not None:
                line["fire"] = frame.fire
            if frame.stats is not None:
                line["stats"] = frame.stats
            if frame.camera:
                line["camera"] = frame.camera
                if frame.seen is not None:
                    line["seen"] = frame.seen
            handle.write(_dumps(line) + "\n")
    return file
