"""The decision rule: from the temporal statistics to a level per frame.

Obico's rule (``shared/reference/obico.md`` §1.5), written from its
description: the score's excess over the printer's lifetime baseline,
scaled by sensitivity, is compared with a threshold that rises with the
print's own short mean, clamped between ``threshold_low`` and
``threshold_high``. A warning uses the plain threshold, a failure the
threshold times ``escalating_factor``. Pure code, no clock and no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from failwatch_moonraker.stats import TemporalStats


class Level(str, enum.Enum):
    OK = "ok"
    WARNING = "warning"
    FAILURE = "failure"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class PolicyParams:
    sensitivity: float = 1.0
    threshold_low: float = 0.38
    threshold_high: float = 0.78
    short_multiple: float = 3.8
    escalating_factor: float = 1.75
    safe_frames: int = 30


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
