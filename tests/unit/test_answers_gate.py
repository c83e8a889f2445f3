"""The one gate for predictor answers (issue 10 items 1-3), for every backend.

A score that is not a finite number from 0 to 1000, JSON nested too deep, an
answer over 4 MiB: a BadResponse (the frame skipped, not counted), never an
OverflowError or RecursionError that would kill the watch loop. Waits asked for
by a server are honoured up to 10 minutes.
"""

from __future__ import annotations

import json
import math
import threading

import aiohttp
import pytest

from failwatch_moonraker.core.stats import BadScore, StatsParams, TemporalStats
from failwatch_moonraker.predictors import BadResponse, RateLimited
from failwatch_moonraker.predictors.answers import (
    MAX_DETECTIONS,
    check_score,
    checked_prediction,
    load_json,
    parse_off_loop,
)
from failwatch_moonraker.predictors.remote import ml_api, obico, printwatch
from failwatch_moonraker.predictors.remote.obico import ObicoPredictor, parse_retry_after
from sim.predictor import FakeObicoPredictor, Hostile

BAD_SCORES = ["NaN", "Infinity", "-Infinity", "-1e6", "-0.001", "1e300", "1000.5", "1" * 400,
              "1" * 5000, "true", '"0.5"', "[0.5]", "null"]
DEEP = b"[" * 100_000 + b"]" * 100_000


def obico_body(p: str) -> bytes:
    return b'{"result": {"p": ' + p.encode() + b', "detections": []}}'


def ml_body(conf: str) -> bytes:
    return b'{"detections": [["failure", ' + conf.encode() + b", [10, 10, 5, 5]]]}"


def pw_body(score: str, code: str = "200") -> bytes:
    return (b'{"statusCode": ' + code.encode() + b', "score": ' + score.encode()
            + b', "defect_detected": false, "boxes": []}')


@pytest.mark.parametrize("value", BAD_SCORES)
def test_every_backend_refuses_a_score_that_is_not_a_finite_number(value: str) -> None:
    with pytest.raises(BadResponse, match="bad answer|no numeric"):
        obico.parse_response(obico_body(value))
    if value not in ("null",):
        with pytest.raises(BadResponse, match="bad answer|malformed"):
            ml_api.parse_detections(ml_body(value))
    if value != '"0.5"':  # PrintWatch's legacy API writes numbers as text
        with pytest.raises(BadResponse, match="bad answer|no numeric"):
            printwatch.parse_answer(pw_body(value), (640, 480))


def test_printwatch_text_scores_and_status_codes() -> None:
    assert printwatch.parse_answer(pw_body('"0.25"'), None).p == 0.25  # the legacy API
    for score in ('"nan"', '"inf"', '"-1e6"', '"' + "9" * 400 + '"'):
        with pytest.raises(BadResponse, match="bad answer"):
            printwatch.parse_answer(pw_body(score), None)
    for code in ('"nan"', "1e999", '"1e999"', "-5", "1" * 400, "NaN"):
        with pytest.raises(BadResponse, match="statusCode"):
            printwatch.parse_answer(pw_body("0.1", code), None)


def test_good_answers_still_pass_and_p_above_one_is_normal() -> None:
    assert obico.parse_response(obico_body("2.5")).p == 2.5
    assert ml_api.parse_detections(ml_body("0.5"), bending_factor=2.0).p == 1.0
    assert printwatch.parse_answer(pw_body("0"), None).p == 0.0
    assert check_score(1000) == 1000.0


@pytest.mark.parametrize("body", [DEEP, b'{"result": ' + DEEP + b"}",
                                  b'{"result": {"p": 0.1, "detections": ' + DEEP + b"}}"])
def test_deep_nesting_is_a_bad_answer_also_in_the_error_text(body: bytes) -> None:
    for parse in (obico.parse_response, ml_api.parse_detections,
                  lambda b: printwatch.parse_answer(b, None)):
        with pytest.raises(BadResponse):
            parse(body)
    # the helpers that quote an error body never raise either
    assert obico._error_text(body).startswith("[[[") or "result" in obico._error_text(body)
    assert ml_api._message(body)
    assert printwatch._message(None, body)


def test_boxes_in_an_answer_are_checked_and_cut_at_a_thousand() -> None:
    many = ",".join(["[0.5, [10, 10, 5, 5]]"] * 5000)
    pred = obico.parse_response(b'{"result": {"p": 0.5, "detections": [' + many.encode()
                                + b"]}}")
    assert len(pred.detections) == MAX_DETECTIONS
    many_ml = ",".join(['["f", 0.0001, [10, 10, 5, 5]]'] * 5000)
    assert len(ml_api.parse_detections(b'{"detections": [' + many_ml.encode() + b"]}")
               .detections) == MAX_DETECTIONS
    for box in ("[1, Infinity, 3, 4]", "[1, NaN, 3, 4]", "[1, 2, -3, 4]", "[1, 2, 3, 1e300]"):
        with pytest.raises(BadResponse, match="malformed detection"):
            obico.parse_response(b'{"result": {"p": 0.5, "detections": [[0.5, ' +
                                 box.encode() + b"]]}}")
    with pytest.raises(BadResponse):
        checked_prediction(0.5, [(0.5, (1.0, 2.0, math.nan, 4.0))])


def test_retry_after_and_printwatch_interval_are_capped_at_ten_minutes() -> None:
    assert parse_retry_after("1e8") == 600.0
    assert parse_retry_after("inf") == 600.0
    assert parse_retry_after("nan") is None
    assert parse_retry_after("1" * 5000) == 600.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("30") == 30.0
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT") == 600.0
    assert RateLimited("x", math.inf).retry_after == 600.0
    assert RateLimited("x", None).retry_after is None
    for interval in ("1e8", "Infinity", "1e999", "9" * 400):
        body = b'{"statusCode": 213, "interval": ' + interval.encode() + b"}"
        with pytest.raises(RateLimited) as caught:
            printwatch.parse_answer(body, None)
        assert caught.value.retry_after == 600.0


def test_the_core_refuses_a_non_finite_score_and_keeps_its_statistics() -> None:
    stats = TemporalStats()
    stats.update(0.1, StatsParams())
    before = stats.to_dict()
    for bad in (math.nan, math.inf, -1e6, 1e300, 10**400, True):
        with pytest.raises(BadScore, match="not counted"):
            stats.update(bad, StatsParams())  # type: ignore[arg-type]
    assert stats.to_dict() == before


def test_load_json_caps_the_size() -> None:
    with pytest.raises(BadResponse, match="larger than 4 MiB"):
        load_json(b" " * (5 * 1024 * 1024))
    with pytest.raises(BadResponse, match="not JSON"):
        load_json(b"\xff\xfe")


async def test_large_answers_are_parsed_off_the_event_loop() -> None:
    threads: list[str] = []

    def parse(body: bytes) -> int:
        threads.append(threading.current_thread().name)
        return len(body)

    assert await parse_off_loop(parse, b"x" * 100) == 100
    assert await parse_off_loop(parse, b"x" * (1024 * 1024)) == 1024 * 1024
    main = threading.main_thread().name
    assert threads[0] == main and threads[1] != main


async def test_a_huge_answer_is_not_read_past_the_cap_and_retry_after_is_capped() -> None:
    fake = FakeObicoPredictor()
    huge = b'{"result": {"p": 0.1, "pad": "' + b"x" * (100 * 1024 * 1024) + b'"}}'
    fake.hostile.extend([Hostile(huge, name="100 MB"),
                         Hostile(b'{"error": "slow down"}', status=429,
                                 headers=(("Retry-After", "1e8"),)),
                         Hostile(b'{"error": "slow down"}', status=429,
                                 headers=(("Retry-After", "inf"),))])
    async with fake, aiohttp.ClientSession() as http:
        predictor = ObicoPredictor(http, fake.url, fake.serial_no, fake.access_token, 30)
        with pytest.raises(BadResponse, match="larger than 4 MiB"):
            await predictor.predict(b"\xff\xd8\xff", "print-1")
        for _ in range(2):
            with pytest.raises(RateLimited) as caught:
                await predictor.predict(b"\xff\xd8\xff", "print-1")
            assert caught.value.retry_after == 600.0


def test_a_broken_printer_status_never_breaks_the_printwatch_request() -> None:
    from failwatch_moonraker.predictors import PredictContext

    predictor = printwatch.PrintWatchPredictor(None, "http://127.0.0.1:9", "k", "p")  # type: ignore[arg-type]
    for progress, duration in [(math.nan, math.inf), (1e-300, 1e308), (-1.0, -5.0),
                               (math.inf, math.nan), (0.5, 100.0)]:
        body = predictor.payload(b"\xff\xd8", "print-1", PredictContext(
            progress=progress, print_duration=duration, total_duration=duration))
        json.dumps(body, allow_nan=False)
    assert body["printTime"] == 100 and body["printTimeLeft"] == 100 and body["progress"] == 50.0
