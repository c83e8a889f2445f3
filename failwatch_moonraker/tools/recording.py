"""The recording format: file names, the header, a reader and a writer.

Replay and tune read recordings; :mod:`~failwatch_moonraker.tools.record` writes
them as the daemon watches. A recording is ``<print id>.jsonl`` in the ``[record]``
folder, one compact JSON object per line:

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
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from failwatch_moonraker.core.stats import MAX_SCORE, is_score

FORMAT = "failwatch-recording"
VERSION = 1  # the single unnamed camera: the layout every reader knows
VERSION_CAMERAS = 2  # named cameras: "cameras" in the header, "camera" in frames
SUFFIX = ".jsonl"
FRAMES_SUFFIX = ".frames"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def file_stem(print_id: str) -> str:
    """A file name for a print id (Moonraker's are hex; fallback ids hold '/' and '@')."""
    stem = _UNSAFE.sub("_", print_id).strip(".") or "print"
    return stem[:120]


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def format_version(before: Mapping[str, object]) -> int:
    """The header's version: 1 for the single unnamed camera, 2 with named ones."""
    return VERSION if list(before) == [""] else VERSION_CAMERAS


def stats_fields(before: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The header's (and restart line's) statistics: ``stats`` for the single unnamed
    camera, as always; ``cameras`` by name otherwise."""
    if list(before) == [""]:
        return {"stats": before[""]}
    return {"cameras": {name: {"stats": stats} for name, stats in before.items()}}


def snapshot_name(number: int, camera: str = "") -> str:
    """``000012.jpg``, or ``000012-side.jpg`` for the named camera ``side``."""
    if not camera:
        return f"{number:06d}.jpg"
    return f"{number:06d}-{_UNSAFE.sub('_', camera)[:60]}.jpg"


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
        handle.write(dumps({"type": "header", "format": FORMAT,
                             "version": format_version(before), "print_id": rec.print_id,
                             "printer": rec.printer, "file": rec.file,
                             "start_time": rec.start_time, **stats_fields(before),
                             "params": rec.params}) + "\n")
        for frame in rec.frames:
            if frame.resumed_at is not None:
                handle.write(dumps({"type": "resume", "t": frame.resumed_at}) + "\n")
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
            handle.write(dumps(line) + "\n")
    return file
