"""``failwatch-moonraker tune``: grid-search the [detection] settings on labelled recordings.

Why vectorised: a useful grid is thousands of settings over dozens of prints
of thousands of frames, 10^8 frame decisions. The statistics are recurrences,
so the frames are looped over once, vectorised across the distinct window
sizes and all prints; the decision is then one array expression per chunk of
settings. Every operation is the same IEEE operation, in the same order, as
in :mod:`~failwatch_moonraker.core.stats` and :mod:`~failwatch_moonraker.core.policy`, so
the result equals :func:`first_pauses_plain` (the daemon's own
:class:`~failwatch_moonraker.core.session.WatchSession`, frame by frame) exactly;
the tests hold the two to that.

Only pauses count (the failure level firing the on_failure actions), with
safe_frames and resume_cooldown honoured as in the daemon.

Several cameras: each camera keeps its own statistics, so each camera of each
print is a row of its own; the printer's level is the worst camera's, so a
print is paused at the first frame any of its cameras fails on (the actions
run once per print). A user resume is the printer's: it holds back every
camera's pause.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import math
import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt

from failwatch_moonraker.config import DetectionConfig
from failwatch_moonraker.core.policy import Level
from failwatch_moonraker.tools.recording import Recording, RecordingError, read_recording
from failwatch_moonraker.tools.replay import (
    SETTINGS,
    SettingsError,
    allowed_keys,
    camera_choice,
    clock,
    make_settings,
    session_params,
    start_session,
)

#: What is searched when no --grid says otherwise (Obico's values in the middle).
DEFAULT_GRID: dict[str, list[float | int]] = {
    "sensitivity": [0.8, 0.9, 1.0, 1.1, 1.2, 1.4],
    "threshold_low": [0.3, 0.38, 0.46],
    "threshold_high": [0.7, 0.78, 0.9],
    "short_multiple": [3.0, 3.8, 4.6],
    "escalating_factor": [1.5, 1.75, 2.0],
    "ewm_span": [8, 12, 16],
}
#: warning_cooldown only spaces warnings out: it never changes when a print is paused.
GRID_KEYS = tuple(k for k in SETTINGS if k != "warning_cooldown")
MAX_SETS = 1_000_000
CHUNK_ELEMENTS = 4_000_000  # (settings x prints x frames) per decision chunk, ~32 MB a temporary

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]


class TuneError(Exception):
    """A labels or grid file that cannot be used; the message says how to fix it."""


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


@dataclass
class Labelled:
    recording: Recording
    failure_at: float | None  # seconds since the print started; None = a good print

    @property
    def name(self) -> str:
        return self.recording.path.name


def _load_yaml(path: Path, what: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise TuneError("tune needs PyYAML: pip install 'failwatch-moonraker[tune]'") from None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TuneError(f"{path}: cannot read the {what} file: {exc.strerror or exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TuneError(f"{path}: not valid YAML: {exc}") from None


def _failure_time(value: Any, rec: Recording, where: str) -> float | None:
    """A label: ``good``, seconds since the print started, or an ISO time."""
    if isinstance(value, str) and value.strip().lower() == "good":
        return None
    seconds: float | None = None
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, (dt.datetime, dt.date, str)):
        moment: dt.date | str | None = value
        if isinstance(value, str):
            text = value.strip()
            try:
                seconds = float(text)
            except ValueError:
                try:
                    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
                except ValueError:
                    moment = None
        if seconds is None and moment is not None:
            if not isinstance(moment, dt.datetime):
                assert isinstance(moment, dt.date)
                moment = dt.datetime(moment.year, moment.month, moment.day)
            if rec.start_time < 1e8:
                raise TuneError(f"{where}: an ISO time needs a recording with a start time; "
                                "give seconds since the print started instead")
            seconds = moment.timestamp() - rec.start_time  # naive = local time
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        raise TuneError(f"{where}: expected 'good', the seconds since the print started when "
                        f"the failure began (>= 0), or an ISO time; got {value!r}")
    return seconds


def load_labels(path: str | os.PathLike[str]) -> list[Labelled]:
    """The labels YAML: ``recording path: good | seconds | ISO time`` per line.

    Relative recording paths are taken relative to the labels file.
    """
    file = Path(path)
    data = _load_yaml(file, "labels")
    if not isinstance(data, dict) or not data:
        raise TuneError(f"{file}: expected lines 'recording.jsonl: good' or "
                        "'recording.jsonl: <seconds since print start when the failure began>'")
    labelled = []
    for key, value in data.items():
        rec_path = Path(str(key)).expanduser()
        if not rec_path.is_absolute():
            rec_path = file.parent / rec_path
        try:
            rec = read_recording(rec_path)
        except RecordingError as exc:
            raise TuneError(f"{file}: {key}: {exc}") from None
        if not rec.frames:
            raise TuneError(f"{file}: {key}: the recording has no frames")
        labelled.append(Labelled(rec, _failure_time(value, rec, f"{file}: {key}")))
    return labelled


def load_grid(path: str | os.PathLike[str] | None) -> dict[str, list[Any]]:
    """The default grid, with the keys of the --grid YAML replacing theirs."""
    grid: dict[str, list[Any]] = {k: list(v) for k, v in DEFAULT_GRID.items()}
    if path is None:
        return grid
    file = Path(path)
    data = _load_yaml(file, "grid")
    if not isinstance(data, dict):
        raise TuneError(f"{file}: expected 'setting: [value, value, ...]' lines; settings: "
                        f"{', '.join(GRID_KEYS)}")
    for key, values in data.items():
        key = str(key)
        if key == "warning_cooldown":
            raise TuneError(f"{file}: warning_cooldown never changes when a print is paused; "
                            "it cannot be tuned here")
        if key not in GRID_KEYS:
            raise TuneError(f"{file}: unknown setting {key!r}; allowed: {allowed_keys()}")
        listed = values if isinstance(values, list) else [values]
        if not listed:
            raise TuneError(f"{file}: {key}: give at least one value")
        grid[key] = listed
    return grid


def expand_grid(grid: Mapping[str, Sequence[Any]], base: DetectionConfig,
                source: str = "grid") -> tuple[list[DetectionConfig], int]:
    """Every combination as settings (base for the rest); and how many were invalid."""
    checked: dict[str, list[Any]] = {}
    for key, values in grid.items():
        checked[key] = []
        for value in values:
            try:
                # each value alone; the pair threshold_low <= threshold_high is checked below
                other = {"threshold_low": {"threshold_high": 1e300},
                         "threshold_high": {"threshold_low": 0.0}}.get(key, {})
                one = make_settings(other, {key: value}, f"{source} {key}={value}")
            except SettingsError as exc:
                raise TuneError(str(exc)) from None
            if getattr(one, key) not in checked[key]:
                checked[key].append(getattr(one, key))
    keys = list(checked)
    total = math.prod(len(v) for v in checked.values())
    if total > MAX_SETS:
        raise TuneError(f"the grid has {total:,} combinations; at most {MAX_SETS:,}")
    sets, skipped = [], 0
    for combo in itertools.product(*(checked[k] for k in keys)):
        settings = dataclasses.replace(base, **dict(zip(keys, combo, strict=True)))
        if settings.threshold_high < settings.threshold_low:
            skipped += 1
            continue
        sets.append(settings)
    return sets, skipped


# ---------------------------------------------------------------------------
# The reference: the daemon's code, frame by frame
# ---------------------------------------------------------------------------


def first_pause_plain(rec: Recording, settings: DetectionConfig,
                      camera: str | None = None) -> int:
    """Index (in ``rec.frames``) of the frame whose decision pauses the print, or -1,
    via WatchSession; ``camera``: that camera's frames alone."""
    names = rec.camera_names() if camera is None else [camera]
    session = start_session(rec, session_params(settings), names)
    for index, frame in enumerate(rec.frames):
        if frame.resumed_at is not None:
            session.on_print_state("paused", frame.resumed_at)
            session.on_print_state("printing", frame.resumed_at)
        if camera is not None and frame.camera != camera:
            continue
        outcome = session.on_frame(frame.p, frame.t, frame.camera)
        if outcome is not None and outcome.fire is Level.FAILURE:
            return index
    return -1


def first_pauses_plain(recs: Sequence[Recording], sets: Sequence[DetectionConfig],
                       camera: str | None = None) -> Ints:
    """(settings, prints) first-pause indices, the plain way (the reference)."""
    return np.array([[first_pause_plain(rec, s, camera) for rec in recs] for s in sets],
                    dtype=np.int64).reshape(len(sets), len(recs))


# ---------------------------------------------------------------------------
# The vectorised evaluation
# ---------------------------------------------------------------------------


@dataclass
class Batch:
    """Each camera of each print as a row of padded (rows, frames) arrays, with its
    starting statistics; the rows of one print are contiguous, in its camera order."""

    p: Floats  # scores, 0 past a row's end
    valid: Bools  # a real frame
    since_resume: Floats  # t - the last user resume before the frame (NaN: none)
    n0: Ints  # prediction_num before the first frame
    life0: Ints  # prediction_num_lifetime before the first frame
    ewm0: Floats
    short0: Floats
    long0: Floats
    at: Ints  # (rows, frames): the frame's index in its recording's frames (-1: padding)
    print_of: Ints  # (rows,): the print of the row
    cameras: list[str]  # (rows,): the camera of the row
    prints: int

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, frames)."""
        return self.p.shape[0], self.p.shape[1]

    def rows_of(self, print_index: int) -> list[int]:
        return [r for r in range(len(self.cameras)) if int(self.print_of[r]) == print_index]


def _stat(stats: Mapping[str, Any], key: str, kind: type) -> Any:
    value = stats.get(key, 0)
    return kind(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else kind(0)


def make_batch(recs: Sequence[Recording], camera: str | None = None) -> Batch:
    """``camera``: that camera's frames alone, of every print (tune --camera), as if
    it were the printer's only camera; a print without it is a CameraError."""
    rows: list[tuple[int, str, list[int]]] = []  # (print, camera, frame indices)
    for i, rec in enumerate(recs):
        names = rec.camera_names() if camera is None else [camera_choice(rec, camera)]
        own: dict[str, list[int]] = {name: [] for name in names}
        for j, frame in enumerate(rec.frames):
            if camera is None or frame.camera == camera:
                own.setdefault(frame.camera, []).append(j)
        rows.extend((i, name, indices) for name, indices in own.items())
    count = max((len(indices) for _, _, indices in rows), default=0)
    shape = (len(rows), count)
    p = np.zeros(shape)
    valid = np.zeros(shape, dtype=bool)
    since = np.full(shape, np.nan)
    at = np.full(shape, -1, dtype=np.int64)
    for r, (i, _, indices) in enumerate(rows):
        frames = recs[i].frames
        since_print = []
        resumed = math.nan
        for frame in frames:  # a resume is the printer's: it counts for every camera
            if frame.resumed_at is not None:
                resumed = frame.resumed_at
            since_print.append(frame.t - resumed)  # the session's `now - resumed_at`
        k = len(indices)
        p[r, :k] = [frames[j].p for j in indices]
        valid[r, :k] = True
        since[r, :k] = [since_print[j] for j in indices]
        at[r, :k] = indices
    stats = [recs[i].start_stats(name) for i, name, _ in rows]
    return Batch(
        p=p, valid=valid, since_resume=since,
        n0=np.array([_stat(s, "prediction_num", int) for s in stats], dtype=np.int64),
        life0=np.array([_stat(s, "prediction_num_lifetime", int) for s in stats],
                       dtype=np.int64),
        ewm0=np.array([_stat(s, "ewm_mean", float) for s in stats]),
        short0=np.array([_stat(s, "rolling_mean_short", float) for s in stats]),
        long0=np.array([_stat(s, "rolling_mean_long", float) for s in stats]),
        at=at, print_of=np.array([i for i, _, _ in rows], dtype=np.int64),
        cameras=[name for _, name, _ in rows], prints=len(recs),
    )


def _ewms(batch: Batch, spans: Sequence[int]) -> Floats:
    """(spans, prints, frames): ``ewm = alpha*p + (1 - alpha)*ewm`` as stats.py does it."""
    prints, frames = batch.shape
    alpha = np.array([2.0 / (span + 1) for span in spans])[:, None]
    keep = 1.0 - alpha
    out = np.empty((len(spans), prints, frames))
    ewm = np.broadcast_to(batch.ewm0, (len(spans), prints)).copy()
    for k in range(frames):
        ewm = alpha * batch.p[:, k] + keep * ewm
        out[:, :, k] = ewm
    return out


def _means(batch: Batch, windows: Sequence[int], start: Floats, n0: Ints) -> Floats:
    """(windows, prints, frames): Obico's incremental mean, as stats.next_mean does it."""
    prints, frames = batch.shape
    w = np.array(windows, dtype=np.float64)[:, None]
    out = np.empty((len(windows), prints, frames))
    mean = np.broadcast_to(start, (len(windows), prints)).copy()
    for k in range(frames):
        n = (n0 + (k + 1)).astype(np.float64)  # the counter already includes this frame
        d = np.where(n >= w, w, n + 1.0)
        mean = mean + (batch.p[:, k] - mean) / d
        out[:, :, k] = mean
    return out


def first_pauses(batch: Batch, sets: Sequence[DetectionConfig]) -> Ints:
    """(settings, prints) index of the first pausing frame, -1 for none; vectorised.

    A print pauses at the first frame any of its cameras fails on.
    """
    if not sets or not batch.prints:
        return np.full((len(sets), batch.prints), -1, dtype=np.int64)
    rows = first_pauses_by_camera(batch, sets)
    never = np.iinfo(np.int64).max
    starts = np.searchsorted(batch.print_of, np.arange(batch.prints))  # rows are by print
    earliest = np.minimum.reduceat(np.where(rows < 0, never, rows), starts, axis=1)
    return np.where(earliest == never, -1, earliest)


def first_pauses_by_camera(batch: Batch, sets: Sequence[DetectionConfig]) -> Ints:
    """(settings, rows): per camera of each print, the index (in the recording's frames)
    of the first frame that camera alone would pause on, -1 for none."""
    prints, frames = batch.shape  # rows: one per camera of each print
    result = np.full((len(sets), prints), -1, dtype=np.int64)
    if not sets or not frames:
        return result
    spans = sorted({s.ewm_span for s in sets})
    shorts = sorted({s.short_window for s in sets})
    longs = sorted({s.long_window for s in sets})
    ewm = _ewms(batch, spans)
    short = _means(batch, shorts, batch.short0, batch.n0)
    long = _means(batch, longs, batch.long0, batch.life0)
    n = batch.n0[:, None] + np.arange(1, frames + 1)[None, :]  # prediction_num per frame
    groups: dict[tuple[int, int, int], list[int]] = {}
    for index, s in enumerate(sets):
        key = (spans.index(s.ewm_span), shorts.index(s.short_window),
               longs.index(s.long_window))
        groups.setdefault(key, []).append(index)
    chunk = max(1, CHUNK_ELEMENTS // max(1, prints * frames))
    for (ie, isw, ilw), members in groups.items():
        excess = ewm[ie] - long[ilw]  # (ewm - long), as in is_failing
        own = short[isw] - long[ilw]  # (short - long)
        for lo in range(0, len(members), chunk):
            idx = members[lo:lo + chunk]
            chosen = [sets[i] for i in idx]

            def column(name: str, chosen: list[DetectionConfig] = chosen) -> Floats:
                return np.array([float(getattr(s, name)) for s in chosen])[:, None, None]

            adjusted = excess * column("sensitivity") / column("escalating_factor")
            fail = adjusted >= column("threshold_low")
            fail &= (adjusted > column("threshold_high")) | \
                (adjusted > own * column("short_multiple"))
            fail &= n >= column("safe_frames")
            fail &= ~(batch.since_resume < column("resume_cooldown"))
            fail &= batch.valid
            hit = fail.any(axis=2)
            local = fail.argmax(axis=2)  # (settings, rows): the row's own frame number
            result[idx] = np.where(hit, batch.at[np.arange(prints)[None, :], local], -1)
    return result


# ---------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------


@dataclass
class Score:
    settings: DetectionConfig
    pauses: list[int]  # per print: first pausing frame index or -1
    false_pauses: int  # good prints paused, or failed prints paused before the failure
    caught: int  # failures paused within max_delay
    failures: int
    goods: int
    median_delay: float | None
    worst_delay: float | None
    distance: float  # from the base settings, to break ties

    def key(self) -> tuple[float, ...]:
        inf = math.inf
        return (self.false_pauses, -self.caught,
                inf if self.median_delay is None else self.median_delay,
                inf if self.worst_delay is None else self.worst_delay, self.distance)


def _distance(s: DetectionConfig, base: DetectionConfig, keys: Iterable[str]) -> float:
    total = 0.0
    for k in keys:
        a, b = float(getattr(s, k)), float(getattr(base, k))
        total += abs(a - b) / max(abs(b), 1e-9)
    return total


def pause_time(label: Labelled, index: int) -> float | None:
    if index < 0:
        return None
    return label.recording.frames[index].t - label.recording.start_time


def score(labels: Sequence[Labelled], sets: Sequence[DetectionConfig], pauses: Ints,
          max_delay: float, base: DetectionConfig, keys: Sequence[str]) -> list[Score]:
    scores = []
    failures = sum(1 for lab in labels if lab.failure_at is not None)
    for s, row in zip(sets, pauses.tolist(), strict=True):
        false = caught = 0
        delays: list[float] = []
        for lab, index in zip(labels, row, strict=True):
            at = pause_time(lab, index)
            if lab.failure_at is None:
                false += at is not None
            elif at is not None and at < lab.failure_at:
                false += 1
            elif at is not None and at - lab.failure_at <= max_delay:
                caught += 1
                delays.append(at - lab.failure_at)
        scores.append(Score(s, row, false, caught, failures, len(labels) - failures,
                            statistics.median(delays) if delays else None,
                            max(delays) if delays else None, _distance(s, base, keys)))
    return scores


def camera_pauses(batch: Batch, settings: DetectionConfig) -> list[list[tuple[str, int]]]:
    """Per print, each camera and the frame it alone would pause on (-1: never)."""
    rows = first_pauses_by_camera(batch, [settings])[0].tolist()
    found: list[list[tuple[str, int]]] = [[] for _ in range(batch.prints)]
    for r, index in enumerate(rows):
        found[int(batch.print_of[r])].append((batch.cameras[r], index))
    return found


def rank(scores: list[Score]) -> list[Score]:
    """No false pause first, then most failures caught in time, then the shortest delays."""
    return sorted(scores, key=Score.key)


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _delay(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} s"


def snippet(settings: DetectionConfig, keys: Sequence[str]) -> str:
    return "[detection]\n" + "".join(f"{k}: {_fmt(getattr(settings, k))}\n" for k in keys)


def print_report(labels: Sequence[Labelled], ranked: Sequence[Score], baseline: Score,
                 keys: Sequence[str], max_delay: float, out: TextIO, *, top: int = 10,
                 header: str = "", camera: str | None = None,
                 cameras: Sequence[Sequence[tuple[str, int]]] | None = None) -> None:
    """``cameras``: per print, what each camera alone does with the best settings
    (:func:`camera_pauses`); shown for the prints with several cameras, unless
    ``camera`` (tune --camera) was the one camera tuned on."""
    if header:
        print(header, file=out)
    widths = {k: max(len(k), 6) for k in keys}
    head = "  ".join(f"{k:>{widths[k]}}" for k in keys)
    print(f"\nBest settings (no false pause first, then failures paused within {max_delay:g} s, "
          "then the shortest median delay):", file=out)
    print(f"{'rank':>4}  {'false pauses':>12}  {'caught':>9}  {'median delay':>12}  "
          f"{'worst delay':>11}  {head}", file=out)

    def row(label: str, s: Score) -> str:
        values = "  ".join(f"{_fmt(getattr(s.settings, k)):>{widths[k]}}" for k in keys)
        false = f"{s.false_pauses} of {s.goods + s.failures}"
        caught = f"{s.caught} of {s.failures}"
        return (f"{label:>4}  {false:>12}  {caught:>9}  {_delay(s.median_delay):>12}  "
                f"{_delay(s.worst_delay):>11}  {values}")

    for place, s in enumerate(ranked[:top], 1):
        print(row(str(place), s), file=out)
    print(row("now", baseline) + "   <- your current settings", file=out)
    best = ranked[0]
    print("\nThe chosen settings on each print:", file=out)
    for place, (lab, index) in enumerate(zip(labels, best.pauses, strict=True)):
        at = pause_time(lab, index)
        if lab.failure_at is None:
            verdict = "good print, never paused" if at is None else \
                f"good print, FALSE PAUSE at {at:.0f} s ({clock(at)})"
        else:
            began = f"failure began {lab.failure_at:.0f} s"
            if at is None:
                verdict = f"{began}, NOT paused"
            elif at < lab.failure_at:
                verdict = f"{began}, paused too early at {at:.0f} s (counted as a false pause)"
            else:
                late = " (LATE: beyond --max-delay)" if at - lab.failure_at > max_delay else ""
                verdict = f"{began}, paused at {at:.0f} s, {at - lab.failure_at:.0f} s later{late}"
        several = camera is None and len(lab.recording.camera_names()) > 1
        if several and at is not None:
            verdict += f" (camera {lab.recording.frames[index].camera})"
        print(f"  {lab.name}: {verdict}", file=out)
        if several and cameras is not None:
            alone = []
            for name, own in cameras[place]:
                when = pause_time(lab, own)
                alone.append(f"{name} " + ("never" if when is None else f"at {when:.0f} s"))
            print(f"    each camera alone would pause: {'; '.join(alone)}", file=out)
    print("\nPaste into failwatch.cfg (then restart failwatch):\n", file=out)
    print(snippet(best.settings, keys), file=out, end="")
