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

    ``level`` is the rule's verdict; ``fire`` is the set of actions to run
    now (``on_warning`` for WARNING, ``on_failure`` for FAILURE) or None;
    ``note`` says why a verdict did not fire, for the debug log.
    """

    level: Level
    fire: Level | None
    changed: bool
    note: str = ""


class WatchSession:
    """One printer's watch: statistics plus the per-print state."""

    def __init__(self, params: SessionParams, stats: TemporalStats | None = None) -> None:
        self.params = params
        self.stats = stats if stats is not None else TemporalStats()
        self.print_state = "unknown"
        self.print_id: str | None = None
        self.failure_fired = False
        self.last_warning_at: float | None = None
        self.resumed_at: float | None = None
        self.level = Level.OK
        self.resume_count = 0
        # The buffer policy's ring of this print's latest scores (empty for obico).
        self.recent: deque[float] = deque(maxlen=params.policy.buffer.length)
        self.ignored = False  # the user asked not to watch this print
        self._parked = False

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
        if self.print_id is None and self.stats.prediction_num == 0:
            return
        self._reset_print(None)

    def _reset_print(self, print_id: str | None) -> None:
        """Obico resets the per-print state both when a print starts and when it ends."""
        self.stats.reset_print()
        self.print_id = print_id
        self.failure_fired = False
        self.last_warning_at = None
        self.resumed_at = None
        self.level = Level.OK
        self.recent.clear()
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

    def on_frame(self, p: float, now: float) -> FrameOutcome | None:
        """Fold a predictor score in and decide; None if no print is being watched."""
        if not self.watching:
            return None
        self.stats.update(p, self.params.stats)  # refuses (BadScore) a non-finite p
        policy = self.params.policy
        if policy.kind == "buffer":
            self.recent.append(p)
            level = decide_buffer(self.recent, self.stats.prediction_num, policy)
        else:
            level = decide(self.stats, policy)
        changed = level != self.level
        self.level = level
        if level is Level.OK:
            return FrameOutcome(level, None, changed)
        note = ""
        if level is Level.FAILURE:
            if self.failure_fired:
                note = "failure actions already ran for this print"
            elif self.in_resume_cooldown(now):
                note = "the user resumed less than resume_cooldown ago"
            else:
                self.failure_fired = True
                self.last_warning_at = now
                return FrameOutcome(level, Level.FAILURE, changed)
        if self.last_warning_at is not None and (
            now - self.last_warning_at < self.params.warning_cooldown
        ):
            extra = "a warning was given less than warning_cooldown ago"
            return FrameOutcome(level, None, changed, f"{note}; {extra}" if note else extra)
        self.last_warning_at = now
        return FrameOutcome(level, Level.WARNING, changed, note)

    def summary(self) -> str:
        """The statistics for logs and the console, plus the ring for the buffer policy."""
        text = self.stats.summary()
        buf = self.params.policy.buffer
        if self.params.policy.kind == "buffer":
            text += f" defective={defective_count(self.recent, buf)}/{len(self.recent)}" \
                f" (p>={buf.confidence:g})"
        return text

    def in_resume_cooldown(self, now: float) -> bool:
        return self.resumed_at is not None and now - self.resumed_at < self.params.resume_cooldown

    # -- persistence --------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "stats": self.stats.to_dict(),
            "print_id": self.print_id,
            "failure_fired": self.failure_fired,
            "last_warning_at": self.last_warning_at,
            "resumed_at": self.resumed_at,
            "recent": list(self.recent),
            "ignored": self.ignored,
        }

    @classmethod
    def from_dict(cls, params: SessionParams, data: dict[str, Any],
                  problems: list[str] | None = None) -> WatchSession:
        """Rebuild from :meth:`to_dict`; invalid values are reset and named in ``problems``."""
        found: list[str] = []
        raw_stats = data.get("stats")
        if raw_stats is not None and not isinstance(raw_stats, dict):
            found.append("stats (not an object)")
        stats = TemporalStats.from_dict(raw_stats if isinstance(raw_stats, dict) else {}, found)
        session = cls(params, stats)
        print_id = data.get("print_id")
        session.print_id = print_id if isinstance(print_id, str) and len(print_id) <= 4096 \
            else None
        if print_id is not None and session.print_id is None:
            found.append("print_id")
        session.failure_fired = data.get("failure_fired") is True
        recent = data.get("recent")
        if isinstance(recent, list) and session.print_id is not None:
            good = [float(v) for v in recent[-10_000:] if is_score(v)]
            if len(good) != len(recent):
                found.append("recent (scores that are not numbers from 0 to 1000)")
            session.recent.extend(good)
        elif recent is not None and not isinstance(recent, list):
            found.append("recent (not a list)")
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
