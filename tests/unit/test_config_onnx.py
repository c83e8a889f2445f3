"""[predictor] options of backend onnx: defaults, bounds, the model path."""

from __future__ import annotations

import os

import pytest

from failwatch_moonraker.config import ConfigError, auto_engine_cpus, parse_config

P = "/home/pi/printer_data/config/failwatch.cfg"


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, P)
    return str(info.value).split("\n")


def test_defaults() -> None:
    pred = parse_config("[predictor]\nbackend: onnx\n", P).predictor
    assert pred.backend == "onnx" and pred.url == ""
    assert pred.model == os.path.expanduser(
        "~/printer_data/failwatch/models/obico-model-weights-5a6b1be1fa.onnx")
    engine = auto_engine_cpus(os.sched_getaffinity(0))
    threads = 1 if len(engine) == 1 else 2  # more threads than CPUs only take turns
    assert (pred.threads, pred.confidence_threshold, pred.nms_threshold) == (threads, 0.08,
                                                                             0.45)
    assert (pred.bending_factor, pred.nice, pred.cpus, pred.unload_after) == (1.0, 10, engine,
                                                                              300)


def test_threads_default_follows_the_engines_cpus() -> None:
    one = parse_config("[predictor]\nbackend: onnx\ncpus: 0\n", P).predictor
    assert (one.cpus, one.threads) == ((0,), 1)
    every = parse_config("[predictor]\nbackend: onnx\ncpus: all\n", P).predictor
    assert every.cpus == () and every.threads == min(2, len(os.sched_getaffinity(0)))
    assert parse_config("[predictor]\nbackend: onnx\ncpus: 0\nthreads: 3\n",
                        P).predictor.threads == 3
    assert parse_config("[predictor]\nbackend: onnx\ncpus: 0\nthreads: Auto\n",
                        P).predictor.threads == 1
    with pytest.raises(ConfigError) as info:
        parse_config("[predictor]\nbackend: onnx\nthreads: many\n", P)
    assert str(info.value) == (f"{P}: [predictor] threads: must be auto or an integer from 1 "
                               "to 64, got 'many'")


def test_values_and_relative_model_path() -> None:
    pred = parse_config("[predictor]\nbackend: onnx\nmodel: models/mine.onnx\nthreads: 1\n"
                        "confidence_threshold: 0.2\nnms_threshold: 0.5\nbending_factor: 0.8\n"
                        "nice: 15\ntimeout: 60\n", P).predictor
    assert pred.model == "/home/pi/printer_data/config/models/mine.onnx"
    assert (pred.threads, pred.confidence_threshold, pred.nms_threshold) == (1, 0.2, 0.5)
    assert (pred.bending_factor, pred.nice, pred.timeout) == (0.8, 15, 60.0)


def test_bounds_name_file_section_option() -> None:
    assert errors_of("[predictor]\nbackend: onnx\nthreads: 0\nconfidence_threshold: 1.5\n"
                     "nms_threshold: 0\n") == [
        f"{P}: [predictor] threads: must be an integer >= 1, got '0'",
        f"{P}: [predictor] confidence_threshold: must be a number <= 1, got '1.5'",
        f"{P}: [predictor] nms_threshold: must be a number > 0, got '0'",
    ]
