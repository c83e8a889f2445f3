"""[predictor] options of the local engines: defaults, bounds and messages."""

from __future__ import annotations

import os

import pytest

from failwatch_moonraker.config import ConfigError, auto_engine_cpus, parse_config

MINE = sorted(os.sched_getaffinity(0))


def test_defaults_without_credentials() -> None:
    p = parse_config("[predictor]\nbackend: pinozcam\n").predictor
    assert (p.backend, p.cpus, p.nice, p.unload_after, p.timeout) == (
        "pinozcam", auto_engine_cpus(MINE), 10, 300.0, 30.0)
    assert (p.score_threshold, p.area_sensitivity) == (0.87, 0.04)


def test_values() -> None:
    p = parse_config("[predictor]\nbackend: PinozCam\ncpus: 0\nnice: 0\nunload_after: 0\n"
                     "score_threshold: 0.93\narea_sensitivity: 0.06\n").predictor
    assert (p.backend, p.cpus, p.nice, p.unload_after) == ("pinozcam", (0,), 0, 0.0)
    assert (p.score_threshold, p.area_sensitivity) == (0.93, 0.06)


@pytest.mark.parametrize(("available", "engine"), [
    ([0, 1, 2, 3], (1, 2, 3)),  # a Pi 4: CPU 0 (the interrupts, and Klipper's) left free
    ([0, 1], (1,)),
    ([3, 2], (3,)),  # a daemon itself limited to CPUs 2-3: the lowest of those is left
    ([0], ()),  # one CPU: nothing to leave, the engine may use it (nice still applies)
])
def test_auto_leaves_the_lowest_cpu_to_klipper(available: list[int],
                                               engine: tuple[int, ...]) -> None:
    assert auto_engine_cpus(available) == engine


@pytest.mark.parametrize(("value", "engine"), [
    ("auto", auto_engine_cpus(MINE)), ("", auto_engine_cpus(MINE)), ("All", ()),
    (str(MINE[-1]), (MINE[-1],)),
])
def test_cpus_values(value: str, engine: tuple[int, ...]) -> None:
    text = f"[predictor]\nbackend: pinozcam\ncpus: {value}\n"
    assert parse_config(text).predictor.cpus == engine


@pytest.mark.parametrize(("line", "message"), [
    ("cpus: 0, 0", "[predictor] cpus: CPU '0' is listed more than once"),
    ("cpus: one", "[predictor] cpus: must be auto, all, or CPU numbers from 0 to"),
    ("cpus: all, 1", "[predictor] cpus: all stands alone: auto, all, or CPU numbers "
                     "separated by commas"),
    ("cpus: 0, AUTO", "[predictor] cpus: auto stands alone"),
    (f"cpus: {os.cpu_count()}", f"this machine has {os.cpu_count()} CPU(s)"),
    ("nice: -1", "[predictor] nice: must be an integer >= 0, got '-1'"),
    ("nice: 20", "[predictor] nice: must be an integer <= 19, got '20'"),
    ("unload_after: -5", "[predictor] unload_after: must be a number >= 0, got '-5'"),
    ("score_threshold: 0", "[predictor] score_threshold: must be a number > 0, got '0'"),
    ("area_sensitivity: 2", "[predictor] area_sensitivity: must be a number <= 1, got '2'"),
])
def test_bad_values_name_the_option(line: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(f"[predictor]\nbackend: pinozcam\n{line}\n", "/x/failwatch.cfg")
    assert message in str(exc.value)
    assert str(exc.value).startswith("/x/failwatch.cfg: [predictor]")
