"""The decision rule, checked against Obico's published simulation table."""

from __future__ import annotations

import pytest

from failwatch_moonraker.core.policy import (
    Level,
    PolicyParams,
    decide,
    is_failing,
    warning_threshold,
)
from failwatch_moonraker.core.stats import StatsParams, TemporalStats

DEFAULT = PolicyParams()


def stats(ewm: float, short: float, long: float = 0.0, n: int = 100) -> TemporalStats:
    return TemporalStats(p=ewm, ewm_mean=ewm, rolling_mean_short=short, rolling_mean_long=long,
                         prediction_num=n, prediction_num_lifetime=10_000)


@pytest.mark.parametrize(
    ("ewm", "short", "expected"),
    [
        (0.30, 0.0, Level.OK),  # below threshold_low
        (0.50, 0.0, Level.WARNING),  # above low, short term quiet
        (0.50, 0.2, Level.OK),  # 0.5 < 3.8 * 0.2 = 0.76: the print itself was noisy
        (0.80, 0.5, Level.WARNING),  # above threshold_high always warns
        (1.20, 0.0, Level.FAILURE),  # 1.2 / 1.75 = 0.686 > 0.38
        (1.40, 1.0, Level.FAILURE),  # 1.4 / 1.75 = 0.8 > high
        (1.30, 1.0, Level.WARNING),  # 1.3 / 1.75 = 0.743 < 3.8 -> no failure
    ],
)
def test_levels(ewm: float, short: float, expected: Level) -> None:
    assert decide(stats(ewm, short), DEFAULT) is expected


def test_long_mean_is_the_baseline() -> None:
    # a noisy camera: long mean 0.3, ewm 0.6 -> excess 0.3 < 0.38
    assert decide(stats(0.6, 0.3, long=0.3), DEFAULT) is Level.OK
    assert decide(stats(0.6, 0.0, long=0.0), DEFAULT) is Level.WARNING


def test_sensitivity_divides_every_threshold() -> None:
    s = stats(0.35, 0.0)
    assert decide(s, DEFAULT) is Level.OK
    assert decide(s, PolicyParams(sensitivity=1.2)) is Level.WARNING  # 0.42 > 0.38


def test_safe_frames_frame_29_is_safe_frame_30_may_fire() -> None:
    assert decide(stats(2.0, 0.0, n=29), DEFAULT) is Level.OK
    assert decide(stats(2.0, 0.0, n=30), DEFAULT) is Level.FAILURE
    assert decide(stats(2.0, 0.0, n=1), PolicyParams(safe_frames=0)) is Level.FAILURE


def test_is_failing_bounds_are_obicos() -> None:
    # exactly at low: not below it, so compared with the short-term threshold
    assert is_failing(stats(0.38, 0.0), DEFAULT, 1.0)
    assert not is_failing(stats(0.3799, 0.0), DEFAULT, 1.0)


def test_warning_threshold_is_clamped() -> None:
    assert warning_threshold(stats(0, 0.0), DEFAULT) == pytest.approx(0.38)
    assert warning_threshold(stats(0, 0.15), DEFAULT) == pytest.approx(0.57)
    assert warning_threshold(stats(0, 1.0), DEFAULT) == pytest.approx(0.78)


def simulate(failure_from: int, p: float, established: bool = True) -> tuple[int | None, ...]:
    """Frames (counted from the failure's start) to the first warning and failure."""
    s = TemporalStats(prediction_num_lifetime=7200 if established else 0)
    first: dict[Level, int] = {}
    for i in range(failure_from + 400):
        s.update(p if i >= failure_from else 0.0, StatsParams())
        level = decide(s, DEFAULT)
        k = i - failure_from + 1
        if level is not Level.OK and i >= failure_from:
            first.setdefault(Level.WARNING, k)
        if level is Level.FAILURE and i >= failure_from:
            first.setdefault(Level.FAILURE, k)
    return first.get(Level.WARNING), first.get(Level.FAILURE)


@pytest.mark.parametrize(
    ("start", "p", "alert", "pause"),
    [
        (0, 0.8, 30, None),
        (0, 1.0, 30, None),
        (0, 1.5, 30, 30),
        (60, 0.5, 9, None),
        (60, 1.0, 3, 7),
        (60, 2.0, 2, 3),
        (180, 0.8, 4, 11),
    ],
)
def test_obico_simulation_table_established_printer(start: int, p: float, alert: int | None,
                                                    pause: int | None) -> None:
    assert simulate(start, p) == (alert, pause)


@pytest.mark.parametrize(
    ("start", "p", "alert", "pause"),
    [(60, 1.0, 4, 10), (180, 0.8, 5, 14), (0, 1.0, None, None), (60, 0.5, None, None)],
)
def test_obico_simulation_table_new_printer(start: int, p: float, alert: int | None,
                                            pause: int | None) -> None:
    assert simulate(start, p, established=False) == (alert, pause)
