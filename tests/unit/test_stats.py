"""Temporal statistics against hand-computed vectors (Obico's update rule)."""

from __future__ import annotations

import pytest

from failwatch_moonraker.core.stats import StatsParams, TemporalStats, next_mean

# alpha = 2/(3+1) = 0.5, short window 2, long window 3: small enough to do by hand.
SMALL = StatsParams(ewm_span=3, short_window=2, long_window=3)


def test_next_mean_before_the_window_fills_is_a_mean_with_one_implicit_zero() -> None:
    # n < W: d = n + 1
    assert next_mean(1.0, 0.0, n=1, window=3) == pytest.approx(0.5)
    assert next_mean(0.0, 0.5, n=2, window=3) == pytest.approx(1 / 3)


def test_next_mean_after_the_window_fills_is_an_ewm_with_alpha_one_over_w() -> None:
    # n >= W: d = W
    assert next_mean(1.0, 1 / 3, n=3, window=3) == pytest.approx(1 / 3 + (2 / 3) / 3)
    assert next_mean(0.0, 0.8, n=1000, window=310) == pytest.approx(0.8 - 0.8 / 310)


def test_update_vector_covers_both_branches() -> None:
    s = TemporalStats()
    expected = [
        # p,   ewm,    short,  long,  n
        (1.0, 0.5, 0.5, 0.5, 1),
        (0.0, 0.25, 0.25, 1 / 3, 2),  # short: n=2 >= W=2 (EWM branch); long: n=2 < 3
        (1.0, 0.625, 0.625, 5 / 9, 3),  # long: n=3 >= W=3 (EWM branch)
        (1.0, 0.8125, 0.8125, 19 / 27, 4),
    ]
    for p, ewm, short, long, n in expected:
        s.update(p, SMALL)
        assert s.p == p
        assert s.ewm_mean == pytest.approx(ewm)
        assert s.rolling_mean_short == pytest.approx(short)
        assert s.rolling_mean_long == pytest.approx(long)
        assert s.prediction_num == n
        assert s.prediction_num_lifetime == n


def test_p_above_one_is_used_as_returned() -> None:
    s = TemporalStats()
    s.update(1.6, SMALL)
    assert s.p == 1.6
    assert s.ewm_mean == pytest.approx(0.8)


def test_reset_at_print_start_keeps_the_lifetime_baseline() -> None:
    s = TemporalStats()
    for p in (1.0, 0.0, 1.0):
        s.update(p, SMALL)
    long, lifetime = s.rolling_mean_long, s.prediction_num_lifetime
    s.reset_print()
    assert (s.p, s.ewm_mean, s.rolling_mean_short, s.prediction_num) == (0.0, 0.0, 0.0, 0)
    assert (s.rolling_mean_long, s.prediction_num_lifetime) == (long, lifetime)
    # the next print's first frame: short restarts its cumulative mean, long carries on
    s.update(1.0, SMALL)
    assert s.prediction_num == 1
    assert s.rolling_mean_short == pytest.approx(0.5)
    assert s.rolling_mean_long == pytest.approx(5 / 9 + (1 - 5 / 9) / 3)


def test_restart_resume_gives_the_same_numbers_as_an_uninterrupted_run() -> None:
    frames = [0.1, 0.9, 0.4, 1.2, 0.0, 0.7, 0.3]
    straight = TemporalStats()
    for p in frames:
        straight.update(p, SMALL)
    first = TemporalStats()
    for p in frames[:3]:
        first.update(p, SMALL)
    resumed = TemporalStats.from_dict(first.to_dict())  # what the state file holds
    for p in frames[3:]:
        resumed.update(p, SMALL)
    assert resumed == straight


def test_from_dict_tolerates_damaged_values() -> None:
    s = TemporalStats.from_dict({"ewm_mean": "x", "prediction_num": -3, "rolling_mean_long": 0.2,
                                 "prediction_num_lifetime": True})
    assert s == TemporalStats(rolling_mean_long=0.2)


def test_default_alpha_is_obicos() -> None:
    assert StatsParams().alpha == pytest.approx(2 / 13)
