"""The per-printer watch state machine: prints, frames, cooldowns, actions.

Pure code: every method takes the time it happens at (wall-clock seconds,
so cooldowns keep their meaning across a restart) and returns what the
daemon must do. The rules, after Obico's server (``obico.md`` §1.7):

- frames count only while the print is ``printing``;
- the verdict per frame comes from the configured policy (``obico`` on the
  statistics, or ``buffer`` on this print's ring of recent scores, which is
  reset with the print and persisted so a restart mid-print resumes it);
- the per-print statistics reset when a new print starts and when it ends;
- ``failure`` fires the failure actions at most once per print, and never
  within ``resume_cooldown`` of the user resuming; a failure that may not
  fire is reported as a warning instead;
- ``warning`` fires the warning actions at most once per ``warning_cooldown``;
- a pause made by timelapse parking (moonraker-timelapse parks with PAUSE)
  is not a user pause, and its resume starts no cooldown.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from failwatch_moonraker.core.policy import (
    BufferParams,
    Level,
    PolicyParams,
    decide,
    decide_buffer,
    defective_count,
)
from failwatch_moonraker.core.stats import StatsParams, TemporalStats, is_score

if TYPE_CHECKING:
    from failwatch_moonraker.config import DetectionConfig

ACTIVE_STATES = frozenset({"printing", "paused"})


@dataclass(frozen=True)
class SessionParams:
    stats: StatsParams = StatsParams()
    policy: PolicyParams = PolicyParams()
    resume_cooldown: float = 90.0
    warning_cooldown: float = 300.0


@dataclass(frozen=True)
class FrameOutcome:
    """What one frame decided.

    ``level`` is the printer's level after the frame (the worst camera's);
    ``seen`` is the verdict of the frame's own ``camera``; ``fire`` is the set
    of actions to run now (``on_warning`` for WARNING, ``on_failure`` for
    FAILURE) or None; ``note`` says why a verdict did not fire, for the debug log.
    """

    level: Level
    fire: Level | None
    changed: bool
    note: str = ""
    camera: str = ""
    seen: Level = Level.OK


_RANK = {Level.OK: 0, Level.WARNING: 1, Level.FAILURE: 2}
MAX_RECENT = 10_000


class CameraTrack:
    """One camera's view of the printer: its own statistics, ring and verdict.

    A camera's baseline is its own view (one sees the bed from the side, one
    the nozzle from close), so the statistics are never mixed between cameras.
    """

    def __init__(self, name: str, ring: int, stats: TemporalStats | None = None) -> None:
        self.name = name
        self.stats = stats if stats is not None else TemporalStats()
        self.recent: deque[float] = deque(maxlen=ring)
        self.level = Level.OK

    def reset_print(self) -> None:
        self.stats.reset_print()
        self.recent.clear()
        self.level = Level.OK

    def to_dict(self) -> dict[str, Any]:
        return {"stats": self.stats.to_dict(), "recent": list(self.recent)}

    @classmethod
    def load(cls, name: str, ring: int, data: dict[str, Any], in_print: bool,
             found: list[str], label: str = "") -> CameraTrack:
        """Rebuild from :meth:`to_dict`; invalid values are reset and named in ``found``."""
        problems: list[str] = []
        raw_stats = data.get("stats")
        if raw_stats is not None and not isinstance(raw_stats, dict):
            problems.append("stats (not an object)")
        stats = TemporalStats.from_dict(raw_stats if isinstance(raw_stats, dict) else {},
                                        problems)
        track = cls(name, ring, stats)
        recent = data.get("recent")
        if isinstance(recent, list) and in_print:
            good = [float(v) for v in recent[-MAX_RECENT:] if is_score(v)]
            if len(good) != len(recent):
                problems.append("recent (scores that are not numbers from 0 to 1000)")
            track.recent.extend(good)
        elif recent is not None and not isinstance(recent, list):
            problems.append("recent (not a list)")
        found.extend(f"{label}{item}" for item in problems)
        return track


class WatchSession:
    """One printer's watch: per-camera statistics plus the per-print state.

    ``cameras`` names the printer's cameras ("" for the single ``[camera]``);
    the printer's level is the worst camera's, and the actions still run at
    most once per print whichever camera saw it.
    """

    def __init__(self, params: SessionParams, stats: TemporalStats | None = None,
                 cameras: Sequence[str] = ("",)) -> None:
        self.params = params
        names = list(dict.fromkeys(cameras)) or [""]
        ring = params.policy.buffer.length
        self.tracks: dict[str, CameraTrack] = {n: CameraTrack(n, ring) for n in names}
        if stats is not None:
            self.tracks[names[0]].stats = stats
        self.print_state = "unknown"
        self.print_id: str | None = None
        self.failure_fired = False
        self.last_warning_at: float | None = None
        self.resumed_at: float | None = None
        self.level = Level.OK
        self.resume_count = 0
        self.ignored = False  # the user asked not to watch this print
        self._parked = False

    # -- cameras -------------------------------------------------------------

    @property
    def cameras(self) -> list[str]:
        return list(self.tracks)

    def track(self, camera: str = "") -> CameraTrack:
        try:
            return self.tracks[camera]
        except KeyError:
            raise ValueError(f"no camera named {camera!r}") from None

    @property
    def lead(self) -> CameraTrack:
        """The camera that sets the printer's level (the first on a tie)."""
        return max(self.tracks.values(), key=lambda t: _RANK[t.level])

    @property
    def stats(self) -> TemporalStats:
        """The leading camera's statistics (the only camera's, with one)."""
        return self.lead.stats

    @stats.setter
    def stats(self, value: TemporalStats) -> None:
        next(iter(self.tracks.values())).stats = value

    @property
    def recent(self) -> deque[float]:
        return self.lead.recent

    # -- print life cycle -------------------------------------------------

    def begin_print(self, print_id: str) -> bool:
        """The print ``print_id`` is running; True if it is a new print.

        The same id as the one persisted means the daemon restarted in the
        middle of that print: its statistics carry on.
        """
        if print_id == self.print_id:
            return False
        self._reset_print(print_id)
        return True

    def end_print(self) -> None:
        """The print finished, was cancelled or failed."""
        if self.print_id is None and all(t.stats.prediction_num == 0
                                         for t in self.tracks.values()):
            return
        self._reset_print(None)

    def _reset_print(self, print_id: str | None) -> None:
        """Obico resets the per-print state both when a print starts and when it ends."""
        for track in self.tracks.values():
            track.reset_print()
        self.print_id = print_id
        self.failure_fired = False
        self.last_warning_at = None
        self.resumed_at = None
        self.level = Level.OK
        self.ignored = False

    def ignore_print(self) -> bool:
        """Stop watching the current print until it ends; False if there is none."""
        if self.print_id is None or self.print_state not in ACTIVE_STATES:
            return False
        self.ignored = True
        return True

    def on_print_state(self, state: str, now: float, *, parked: bool = False) -> str | None:
        """Follow ``print_stats.state``; returns ``"resumed"`` or ``"ended"`` on those edges.

        ``parked`` is true while timelapse parking holds the print paused.
        """
        previous = self.print_state
        self.print_state = state
        if state == previous:
            return None
        if state == "paused":
            self._parked = parked
            return None
        if state == "printing" and previous == "paused":
            parked_pause, self._parked = self._parked, False
            if parked_pause or parked:
                return None
            self.resumed_at = now
            self.resume_count += 1
            return "resumed"
        if state not in ACTIVE_STATES and previous in ACTIVE_STATES:
            self.end_print()
            return "ended"
        return None

    @property
    def watching(self) -> bool:
        return self.print_state == "printing" and self.print_id is not None and not self.ignored

    # -- frames -------------------------------------------------------------

    def on_frame(self, p: float, now: float, camera: str = "") -> FrameOutcome | None:
        """Fold one camera's score in and decide; None if no print is being watched."""
        if not self.watching:
            return None
        track = self.track(camera)
        track.stats.update(p, self.params.stats)  # refuses (BadScore) a non-finite p
        policy = self.params.policy
        if policy.kind == "buffer":
            track.recent.append(p)
            seen = decide_buffer(track.recent, track.stats.prediction_num, policy)
        else:
            seen = decide(track.stats, policy)
        track.level = seen
        level = self.lead.level
        changed = level != self.level
        self.level = level

        def outcome(fire: Level | None, note: str = "") -> FrameOutcome:
            return FrameOutcome(level, fire, changed, note, camera, seen)

        if seen is Level.OK:
            return outcome(None)
        note = ""
        if seen is Level.FAILURE:
            if self.failure_fired:
                note = "failure actions already ran for this print"
            elif self.in_resume_cooldown(now):
                note = "the user resumed less than resume_cooldown ago"
            else:
                self.failure_fired = True
                self.last_warning_at = now
                return outcome(Level.FAILURE)
        if self.last_warning_at is not None and (
            now - self.last_warning_at < self.params.warning_cooldown
        ):
            extra = "a warning was given less than warning_cooldown ago"
            return outcome(None, f"{note}; {extra}" if note else extra)
        self.last_warning_at = now
        return outcome(Level.WARNING, note)

    def summary(self, camera: str | None = None) -> str:
        """A camera's statistics (the leading one's by default) for logs and the console,
        plus its ring for the buffer policy."""
        track = self.lead if camera is None else self.track(camera)
        text = track.stats.summary()
        buf = self.params.policy.buffer
        if self.params.policy.kind == "buffer":
            text += f" defective={defective_count(track.recent, buf)}/{len(track.recent)}" \
                f" (p>={buf.confidence:g})"
        return text

    def in_resume_cooldown(self, now: float) -> bool:
        return self.resumed_at is not None and now - self.resumed_at < self.params.resume_cooldown

    # -- persistence --------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The single unnamed camera keeps the original layout (``stats``/``recent`` at the
        top); named cameras go under ``cameras``."""
        data: dict[str, Any] = {
            "print_id": self.print_id,
            "failure_fired": self.failure_fired,
            "last_warning_at": self.last_warning_at,
            "resumed_at": self.resumed_at,
            "ignored": self.ignored,
        }
        if list(self.tracks) == [""]:
            data.update(self.tracks[""].to_dict())
        else:
            data["cameras"] = {name: track.to_dict() for name, track in self.tracks.items()}
        return data

    @classmethod
    def from_dict(cls, params: SessionParams, data: dict[str, Any],
                  problems: list[str] | None = None,
                  cameras: Sequence[str] = ("",)) -> WatchSession:
        """Rebuild from :meth:`to_dict`; invalid values are reset and named in ``problems``.

        A camera the file does not know starts afresh; the statistics saved with one
        unnamed camera carry on as the first camera's when cameras get names.
        """
        found: list[str] = []
        session = cls(params, cameras=cameras)
        print_id = data.get("print_id")
        session.print_id = print_id if isinstance(print_id, str) and len(print_id) <= 4096 \
            else None
        if print_id is not None and session.print_id is None:
            found.append("print_id")
        in_print = session.print_id is not None
        ring = params.policy.buffer.length
        saved = data.get("cameras")
        if saved is not None and not isinstance(saved, dict):
            found.append("cameras (not an object)")
            saved = None
        legacy = {k: data[k] for k in ("stats", "recent") if k in data}
        for index, name in enumerate(session.tracks):
            raw: Any = None
            label = ""
            if saved is not None and name in saved:
                raw, label = saved[name], f"cameras.{name}."
            elif index == 0 and legacy:
                raw = legacy
            elif index == 0 and saved and name == "":
                first = next(iter(saved))
                raw, label = saved[first], f"cameras.{first}."
            if raw is None:
                continue
            if not isinstance(raw, dict):
                found.append(f"{label.rstrip('.')} (not an object)")
                continue
            session.tracks[name] = CameraTrack.load(name, ring, raw, in_print, found, label)
        session.failure_fired = data.get("failure_fired") is True
        session.ignored = data.get("ignored") is True
        for name in ("last_warning_at", "resumed_at"):
            value = data.get(name)
            if value is None:
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool) and \
                    _finite_time(value):
                setattr(session, name, float(value))
            else:
                found.append(name)
        if problems is not None:
            problems.extend(found)
        return session


def _finite_time(value: float) -> bool:
    try:
        return math.isfinite(value) and abs(value) < 1e12
    except OverflowError:
        return False


def params_from_detection(d: DetectionConfig) -> SessionParams:
    """The core's parameters from a [detection] section: the daemon, replay and tune share it."""
    return SessionParams(
        stats=StatsParams(d.ewm_span, d.short_window, d.long_window),
        policy=PolicyParams(
            sensitivity=d.sensitivity,
            threshold_low=d.threshold_low,
            threshold_high=d.threshold_high,
            short_multiple=d.short_multiple,
            escalating_factor=d.escalating_factor,
            safe_frames=d.safe_frames,
            kind=d.policy,
            buffer=BufferParams(d.buffer_confidence, d.buffer_length, d.buffer_percent,
                                d.buffer_warning_percent),
        ),
        resume_cooldown=d.resume_cooldown,
        warning_cooldown=d.warning_cooldown,
    )
