"""Fuzzing the edges that take outside input (issue 10): random and adversarial inputs,
a fixed seed and a bounded count, so a failure is reproducible and the run is short.

The predictor parsers may only raise the predictor taxonomy (PredictorError), the
config loader only ConfigError; the Moonraker message handler and the state loader
raise nothing at all (they log, drop or reset and go on).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
from pathlib import Path
from typing import Any

import pytest

from failwatch_moonraker.config import ConfigError, parse_config
from failwatch_moonraker.core.session import SessionParams, WatchSession
from failwatch_moonraker.core.stats import is_score
from failwatch_moonraker.predictors import Prediction, PredictorError
from failwatch_moonraker.predictors.remote import ml_api, obico, printwatch
from failwatch_moonraker.printer.moonraker import MoonrakerClient
from failwatch_moonraker.store import StateStore, state_problems

SEED = 20261202
COUNT = 400  # per target

ATOMS: list[Any] = [
    0, 1, -1, 0.5, 2.5, 1000, 1000.0001, -1e6, 1e300, -1e300, 1e-320, math.nan, math.inf,
    -math.inf, 10**400, -(10**400), True, False, None, "", "0.5", "nan", "inf", "1e999",
    "9" * 500, "True", "x" * 300, "\x00", "\udcff", "é", [], {}, [1, 2, 3, 4], [0.5, [1, 2, 3, 4]],
    ["failure", 0.5, [1, 2, 3, 4]], [[0.5, [1, 2, 3, 4]]], 200, 213, 215, 217, 401,
]
KEYS = ["p", "result", "detections", "statusCode", "score", "boxes", "interval",
        "defect_detected", "error", "message", "stats", "session", "settings", "print_id",
        "recent", "resumed_at", "last_warning_at", "prediction_num",
        "prediction_num_lifetime", "ewm_mean", "rolling_mean_long", "sensitivity", "enabled",
        "id", "method", "params", "jsonrpc", "webcams"]


def value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 4 or roll < 0.45:
        return rng.choice(ATOMS)
    if roll < 0.7:
        return [value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    return {rng.choice(KEYS): value(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def dumps(obj: Any) -> bytes:
    try:
        return json.dumps(obj).encode("utf-8", "surrogatepass")
    except ValueError:  # a huge integer
        return b'{"p": ' + b"1" * 5000 + b"}"


def adversarial(rng: random.Random, template: Any) -> bytes:
    """A body built on ``template`` (so parsing gets deep), then maybe damaged."""
    body = dumps(template)
    roll = rng.random()
    if roll < 0.1:
        depth = rng.choice([500, 5_000, 100_000])
        return b"[" * depth + b"]" * depth
    if roll < 0.2 and body:
        cut = rng.randrange(len(body))
        return body[:cut]
    if roll < 0.3 and body:
        data = bytearray(body)
        for _ in range(rng.randint(1, 5)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if roll < 0.35:
        return rng.randbytes(rng.randint(0, 200))
    return body


def templates(rng: random.Random) -> dict[str, Any]:
    det = [[value(rng), [value(rng) for _ in range(rng.choice([3, 4, 4, 5]))]]
           for _ in range(rng.randint(0, 4))]
    return {
        "obico": {"result": {"p": value(rng), "detections": rng.choice([det, value(rng)])}},
        "ml_api": {"detections": [[rng.choice(["failure", value(rng)]), value(rng),
                                   [value(rng) for _ in range(4)]]
                                  for _ in range(rng.randint(0, 4))]},
        "printwatch": {"statusCode": rng.choice([200, 200, 213, value(rng)]),
                       "score": value(rng), "interval": value(rng),
                       "defect_detected": rng.choice([True, "False", value(rng)]),
                       "boxes": rng.choice([[[value(rng) for _ in range(5)]], value(rng),
                                            json.dumps([[1, 2, 3, 4]])])},
    }


def check_prediction(pred: Prediction) -> None:
    assert is_score(pred.p)
    assert len(pred.detections) <= 1000
    for conf, box in pred.detections:
        assert is_score(conf) and all(math.isfinite(v) for v in box)


def test_predictor_parsers_raise_only_predictor_errors() -> None:
    rng = random.Random(SEED)
    parsers = {"obico": obico.parse_response,
               "ml_api": lambda b: ml_api.parse_detections(b, rng.choice([1.0, 2.0, 10.0])),
               "printwatch": lambda b: printwatch.parse_answer(
                   b, rng.choice([None, (640, 480), (1, 1)]))}
    outcomes = {"ok": 0, "refused": 0}
    for _ in range(COUNT):
        for name, body in templates(rng).items():
            data = adversarial(rng, body)
            try:
                pred = parsers[name](data)
            except PredictorError:
                outcomes["refused"] += 1
                continue
            check_prediction(pred)
            outcomes["ok"] += 1
        # the error-text helpers quote any body without raising
        data = adversarial(rng, value(rng))
        assert isinstance(obico._error_text(data), str)
        assert isinstance(ml_api._message(data), str)
        assert isinstance(printwatch._message(value(rng), data), str)
    assert outcomes["ok"] > 20 and outcomes["refused"] > 20, outcomes  # both paths exercised


class _Socket:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, text: str) -> None:
        self.sent.append(text)


async def test_moonraker_message_handler_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL)
    rng = random.Random(SEED + 1)
    notified: list[str] = []

    def on_notification(method: str, params: Any) -> None:
        notified.append(method)
        if rng.random() < 0.1:
            raise RuntimeError("a handler bug")  # the client logs it and goes on

    client = MoonrakerClient("ws://127.0.0.1:9/websocket", on_notification=on_notification)
    ws = _Socket()
    loop = asyncio.get_running_loop()
    for _ in range(COUNT * 2):
        future: asyncio.Future[Any] = loop.create_future()
        client._pending[1] = future
        message = {rng.choice(["id", "method", "result", "error", "params", "jsonrpc"]):
                   value(rng) for _ in range(rng.randint(0, 4))}
        if rng.random() < 0.3:
            message["id"] = rng.choice([1, 1, [1], {"a": 1}, 1.0, "1", None, 10**30])
        if rng.random() < 0.3:
            message["method"] = rng.choice(["notify_status_update", value(rng)])
        raw = adversarial(rng, message)
        text: str | bytes = raw.decode("utf-8", "replace") if rng.random() < 0.8 else raw
        await client._handle(ws, text)  # type: ignore[arg-type]
        if future.done() and not future.cancelled():
            future.exception()  # retrieved: no "never retrieved" noise
    assert notified  # the good ones got through


def test_state_loader_never_raises_and_yields_valid_statistics(tmp_path: Path) -> None:
    rng = random.Random(SEED + 2)
    path = tmp_path / "state.json"
    for i in range(COUNT):
        stats = {k: value(rng) for k in rng.sample(
            ["p", "ewm_mean", "rolling_mean_short", "rolling_mean_long", "prediction_num",
             "prediction_num_lifetime"], rng.randint(0, 6))}
        session = {"stats": rng.choice([stats, value(rng)]), "print_id": value(rng),
                   "recent": value(rng), "resumed_at": value(rng),
                   "last_warning_at": value(rng), "failure_fired": value(rng),
                   "ignored": value(rng)}
        state = {"session": rng.choice([session, session, value(rng)]),
                 "settings": rng.choice([{"sensitivity": value(rng), "enabled": value(rng)},
                                         value(rng)])}
        path.write_bytes(adversarial(rng, state))
        saved = StateStore(path).load()
        problems = state_problems(saved)
        raw = saved.get("session")
        restored = WatchSession.from_dict(SessionParams(), raw if isinstance(raw, dict) else {},
                                          problems)
        s = restored.stats
        assert all(is_score(v) for v in (s.p, s.ewm_mean, s.rolling_mean_short,
                                        s.rolling_mean_long)), (i, s)
        assert all(is_score(v) for v in restored.recent)
        json.dumps(restored.to_dict(), allow_nan=False)  # what the next save writes
        for kept in tmp_path.glob("state.json.corrupt-*"):
            kept.unlink()


CONFIG = """\
[moonraker]
url: ws://127.0.0.1:7125/websocket
[camera]
timeout: 5
[predictor]
serial_no: SN-1
access_token: tok-123
[detection]
interval: 10
long_window: 7200
sensitivity: 1.0
[actions]
on_failure: pause, notify
[record]
enabled: false
"""
CONFIG_VALUES = ["", "0", "-0", "+5", "1" * 5000, "-" + "9" * 5000, "0" * 5000 + "1", "nan",
                 "inf", "-inf", "1e99999", "1e-99999", "0x10", "1_000", "true", "yes", "\x00",
                 "%(x)s", "%", "${x}", "é" * 100, "x" * 10_000, "a, b, c", "[detection]",
                 "http://user:pass@host/", "ws://", "pause, pause", "1.5.6", " ", "\t1",
                 "0,0,1,1", "0,0,0.5,1;0.5,0,1,1", "0,0,1e999,1", "1,1,0,0;;", "0,0,.1,.1;" * 40]
CONFIG_OPTIONS = ["interval", "long_window", "sensitivity", "ewm_span", "short_window",
                  "safe_frames", "timeout", "url", "on_failure", "enabled", "max_size",
                  "backend", "policy", "buffer_length", "threshold_low", "image_port",
                  "unknown_option", "max_prints", "path", "level", "mask", "max_pixels"]


def test_config_loader_raises_only_config_errors() -> None:
    rng = random.Random(SEED + 3)
    ok = refused = 0
    for _ in range(COUNT):
        lines = CONFIG.splitlines()
        for _ in range(rng.randint(1, 4)):
            roll = rng.random()
            option = rng.choice(CONFIG_OPTIONS)
            text = f"{option}: {rng.choice(CONFIG_VALUES)}"
            where = rng.randrange(len(lines) + 1)
            if roll < 0.7:
                lines.insert(where, text)
            elif roll < 0.8 and lines:
                del lines[rng.randrange(len(lines))]
            elif roll < 0.9:
                lines.insert(where, rng.choice(["[detection]", "[nope]", "[", "=", ":x",
                                                "  indented", "[printer a]", "[DEFAULT]"]))
            else:
                lines.insert(where, "".join(chr(rng.randrange(1, 0x3000))
                                            for _ in range(rng.randint(1, 30))))
        try:
            parse_config("\n".join(lines), "fuzz.cfg")
        except ConfigError as exc:
            refused += 1
            assert all(str(m).startswith("fuzz.cfg") for m in exc.problems), exc.problems
            continue
        ok += 1
    assert ok > 0 and refused > 100, (ok, refused)
