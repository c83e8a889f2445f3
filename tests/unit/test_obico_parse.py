"""Parsing the predict API's answers exactly as the seed documents them."""

from __future__ import annotations

import json

import pytest

from failwatch_moonraker.predictors.base import BadResponse
from failwatch_moonraker.predictors.remote.obico import (
    ObicoPredictor,
    parse_response,
    parse_retry_after,
)

SEED_BODY = {
    "result": {
        "p": 0,
        "temporal_stats": {"ewm_mean": 0, "rolling_mean_short": 0, "rolling_mean_long": 0,
                           "prediction_num": 0, "prediction_num_lifetime": 0},
        "detections": [
            [0.541085422039032, [422.7984619140625, 236.30227661132812, 61.9364013671875,
                                 74.49552917480469]],
            [0.20370429754257202, [456.3966369628906, 236.23785400390625, 39.029632568359375,
                                   67.34481811523438]],
        ],
    }
}


def test_seed_example_parses() -> None:
    pred = parse_response(json.dumps(SEED_BODY).encode())
    assert pred.p == 0.0
    assert pred.detections[0] == (0.541085422039032, (422.7984619140625, 236.30227661132812,
                                                      61.9364013671875, 74.49552917480469))
    assert pred.raw["temporal_stats"]["prediction_num"] == 0


def test_p_above_one_is_not_clamped() -> None:
    assert parse_response(b'{"result": {"p": 1.63, "detections": []}}').p == 1.63


def test_label_first_triples_are_accepted() -> None:
    body = b'{"result": {"p": 0.5, "detections": [["failure", 0.5, [1, 2, 3, 4]]]}}'
    assert parse_response(body).detections == ((0.5, (1.0, 2.0, 3.0, 4.0)),)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>502</html>", "bad answer: not JSON"),
        (b'{"p": 0.1}', "no 'result' object"),
        (b'{"result": {"p": "high"}}', "'p' is 'high', not a number"),
        (b'{"result": {"p": 0.1, "detections": [[0.1, [1, 2]]]}}', "malformed detection"),
    ],
)
def test_malformed_answers(body: bytes, message: str) -> None:
    with pytest.raises(BadResponse, match=message):
        parse_response(body)


def test_retry_after() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0


def test_repr_hides_the_token() -> None:
    pred = ObicoPredictor(None, "https://x/predict/", "SN1", "secret-token-123")  # type: ignore[arg-type]
    assert "secret-token-123" not in repr(pred)
