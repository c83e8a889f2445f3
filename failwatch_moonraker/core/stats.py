"""Obico's temporal statistics of the failure score, computed locally.

Pure code: no clock, no I/O. The update rule is Obico's, described in
``shared/reference/obico.md`` §1.3-1.4: both frame counters are incremented
before the means, the EWM uses alpha = 2 / (span + 1), and the "rolling"
means are Obico's incremental mean, a cumulative mean (with one implicit zero
sample) until the window fills and an exponential average with alpha = 1/W
afterwards. No samples are stored, so an update allocates nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MAX_SCORE = 1000.0  # Obico's p is a sum of confidences: above 1 is normal, above this is not
MAX_COUNT = 2**53  # frame counters beyond this are not a printer's history


def is_score(value: Any) -> bool:
    """A finite number in [0, MAX_SCORE]: the only thing the statistics may take in."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and _finite(value) and 0.0 <= value <= MAX_SCORE)


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


class BadScore(ValueError):
    """A score the statistics refuse: one NaN would poison every mean for good."""


@dataclass(frozen=True)
class StatsParams:
    """Window sizes; Obico tuned them for one frame every 10 s."""

    ewm_span: int = 12
    short_window: int = 310
    long_window: int = 7200

    @property
    def alpha(self) -> float:
        return 2.0 / (self.ewm_span + 1)


def next_mean(p: float, mean: float, n: int, window: int) -> float:
    """Obico's incremental mean after the n-th sample (n already counts p)."""
    d = window if n >= window else n + 1
    return mean + (p - mean) / d


@dataclass(slots=True)
class TemporalStats:
    """The per-printer statistics.

    ``p``, ``prediction_num``, ``ewm_mean`` and ``rolling_mean_short`` belong
    to the current print and are reset when one starts; ``rolling_mean_long``
    and ``prediction_num_lifetime`` are the printer's lifetime noise baseline
    and are never reset.
    """

    p: float = 0.0
    ewm_mean: float = 0.0
    rolling_mean_short: float = 0.0
    rolling_mean_long: float = 0.0
    prediction_num: int = 0
    prediction_num_lifetime: int = 0

    def update(self, p: float, params: StatsParams) -> None:
        """Fold one frame's score in, in Obico's order; refuses a non-finite or absurd p."""
        if not is_score(p):
            raise BadScore(f"score {_shown(p)} is not a number from 0 to {MAX_SCORE:g}; "
                           "not counted")
        self.p = p = float(p)
        self.prediction_num += 1
        self.prediction_num_lifetime += 1
        alpha = params.alpha
        self.ewm_mean = alpha * p + (1.0 - alpha) * self.ewm_mean
        self.rolling_mean_short = next_mean(
            p, self.rolling_mean_short, self.prediction_num, params.short_window
        )
        self.rolling_mean_long = next_mean(
            p, self.rolling_mean_long, self.prediction_num_lifetime, params.long_window
        )

    def reset_print(self) -> None:
        """Start of a print: forget the last print, keep the lifetime baseline."""
        self.p = 0.0
        self.ewm_mean = 0.0
        self.rolling_mean_short = 0.0
        self.prediction_num = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "p": self.p,
            "ewm_mean": self.ewm_mean,
            "rolling_mean_short": self.rolling_mean_short,
            "rolling_mean_long": self.rolling_mean_long,
            "prediction_num": self.prediction_num,
            "prediction_num_lifetime": self.prediction_num_lifetime,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], problems: list[str] | None = None) -> TemporalStats:
        """Rebuild from :meth:`to_dict` output; missing keys are tolerated.

        A value that is present but not valid (not finite, out of range, the wrong
        type) is reset to zero and named in ``problems``.
        """
        stats = cls()
        for name in ("p", "ewm_mean", "rolling_mean_short", "rolling_mean_long"):
            if name not in data:
                continue
            value = data[name]
            if is_score(value):
                setattr(stats, name, float(value))
            elif problems is not None:
                problems.append(f"stats.{name} ({_shown(value)})")
        for name in ("prediction_num", "prediction_num_lifetime"):
            if name not in data:
                continue
            value = data[name]
            if isinstance(value, int) and not isinstance(value, bool) and \
                    0 <= value <= MAX_COUNT:
                setattr(stats, name, value)
            elif problems is not None:
                problems.append(f"stats.{name} ({_shown(value)})")
        return stats

    def summary(self) -> str:
        """One line for logs and the console."""
        return (
            f"p={self.p:.2f} ewm={self.ewm_mean:.2f} short={self.rolling_mean_short:.2f} "
            f"long={self.rolling_mean_long:.2f} frame={self.prediction_num}"
        )


def _shown(value: Any) -> str:
    """A damaged value for the log: short, whatever it is."""
    if isinstance(value, (dict, list)):
        return f"a JSON {'object' if isinstance(value, dict) else 'list'}"
    if isinstance(value, int) and not isinstance(value, bool) and not _finite(value):
        return "a huge integer"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
