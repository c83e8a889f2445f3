"""[predictor] options of the local engines: defaults, bounds and messages."""

from __future__ import annotations

import os

import pytest

from failwatch_moonraker.config import ConfigError, parse_config


def test_defaults_without_credentials() -> None:
    p = parse_config("[predictor]\nbackend: pinozcam\n").predictor
    assert (p.backend, p.cpus, p.nice, p.unload_after, p.timeout) == ("pinozcam", (), 10,
                                                                      300.0, 30.0)
    assert (p.score_threshold, p.area_sensitivity) == (0.87, 0.04)


def test_values() -> None:
    p = parse_config("[predictor]\nbackend: PinozCam\ncpus: 0\nnice: 0\nunload_after: 0\n"
                     "score_threshold: 0.93\narea_sensitivity: 0.06\n").predictor
    assert (p.backend, p.cpus, p.nice, p.unload_after) == ("pinozcam", (0,), 0, 0.0)
    assert (p.score_threshold, p.area_sensitivity) == (0.93, 0.06)


@pytest.mark.parametrize(("line", "message"), [
    ("cpus: 0, 0", "[predictor] cpus: CPU '0' is listed more than once"),
    ("cpus: one", "[predictor] cpus: must list CPU numbers from 0 to"),
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
