"""The decision rule: from the temporal statistics to a level per frame.

Obico's rule (``shared/reference/obico.md`` §1.5), written from its
description: the score's excess over the printer's lifetime baseline,
scaled by sensitivity, is compared with a threshold that rises with the
print's own short mean, clamped between ``threshold_low`` and
``threshold_high``. A warning uses the plain threshold, a failure the
threshold times ``escalating_factor``. Pure code, no clock and no I/O.

The ``buffer`` policy is PrintWatch's client-side rule (``ecosystem.md`` §7.3),
written from its description: a frame is *defective* when its score reaches
``confidence``; the print fails when at least ``percent`` % of the last
``length`` frames are defective, and warns at ``warning_percent`` %. Until the
print has ``length`` frames there is no verdict at all (a share of a handful of
frames is noise, and PrintWatch also waits for a full ring). Both policies sit
behind the same per-print state machine (:mod:`failwatch_moonraker.core.session`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from failwatch_moonraker.core.stats import TemporalStats


class Level(str, enum.Enum):
    OK = "ok"
    WARNING = "warning"
    FAILURE = "failure"

    def __str__(self) -> str:
        return self.value


POLICIES = ("obico", "buffer")


@dataclass(frozen=True)
class BufferParams:
    """PrintWatch's ring of recent frames; percentages are of ``length`` frames."""

    confidence: float = 0.6
    length: int = 16
    percent: float = 60.0
    warning_percent: float = 30.0


@dataclass(frozen=True)
class PolicyParams:
    sensitivity: float = 1.0
    threshold_low: float = 0.38
    threshold_high: float = 0.78
    short_multiple: float = 3.8
    escalating_factor: float = 1.75
    safe_frames: int = 30
    kind: str = "obico"  # one of POLICIES
    buffer: BufferParams = field(default_factory=BufferParams)


def is_failing(stats: TemporalStats, params: PolicyParams, escalating_factor: float) -> bool:
    """Obico's ``is_failing`` with the given escalation (1 = warning)."""
    if stats.prediction_num < params.safe_frames:
        return False
    long = stats.rolling_mean_long
    adjusted = (stats.ewm_mean - long) * params.sensitivity / escalating_factor
    if adjusted < params.threshold_low:
        return False
    if adjusted > params.threshold_high:
        return True
    return adjusted > (stats.rolling_mean_short - long) * params.short_multiple


def decide(stats: TemporalStats, params: PolicyParams) -> Level:
    """The level of the frame just folded into ``stats``."""
    if is_failing(stats, params, params.escalating_factor):
        return Level.FAILURE
    if is_failing(stats, params, 1.0):
        return Level.WARNING
    return Level.OK


def warning_threshold(stats: TemporalStats, params: PolicyParams) -> float:
    """The excess (ewm - long) x sensitivity that warns at the current short mean."""
    raw = (stats.rolling_mean_short - stats.rolling_mean_long) * params.short_multiple
    return min(max(raw, params.threshold_low), params.threshold_high)


def defective_count(recent: Sequence[float], params: BufferParams) -> int:
    """How many of the last ``length`` scores reach the confidence."""
    start = max(0, len(recent) - params.length)
    return sum(1 for i in range(start, len(recent)) if recent[i] >= params.confidence)


def decide_buffer(recent: Sequence[float], prediction_num: int, params: PolicyParams) -> Level:
    """The ``buffer`` policy's level after the newest score was appended to ``recent``.

    Integer arithmetic on the share (``count * 100 >= percent * length``) so that
    exactly ``percent`` % counts, with no rounding surprise.
    """
    buf = params.buffer
    if prediction_num < params.safe_frames or len(recent) < buf.length:
        return Level.OK
    share = defective_count(recent, buf) * 100
    if share >= buf.percent * buf.length:
        return Level.FAILURE
    if share >= buf.warning_percent * buf.length:
        return Level.WARNING
    return Level.OK
