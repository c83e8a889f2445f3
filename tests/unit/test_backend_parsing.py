"""Pure parsing of the new backends' answers, and the JPEG size reader."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from failwatch_moonraker.predictors import BadRequest, BadResponse, RateLimited, Unavailable
from failwatch_moonraker.predictors.imagesize import jpeg_size
from failwatch_moonraker.predictors.remote.ml_api import base_url, parse_detections
from failwatch_moonraker.predictors.remote.printwatch import convert_boxes, parse_answer, ticket_for


def jpeg(width: int, height: int, progressive: bool = False) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(out, "JPEG", progressive=progressive,
                                                         exif=b"Exif\x00\x00" + b"\x00" * 64)
    return out.getvalue()


@pytest.mark.parametrize(("w", "h", "progressive"),
                         [(1280, 720, False), (640, 480, True), (1, 1, False), (1920, 1080, True)])
def test_jpeg_size(w: int, h: int, progressive: bool) -> None:
    assert jpeg_size(jpeg(w, h, progressive)) == (w, h)


@pytest.mark.parametrize("data", [b"", b"\xff\xd8", b"GIF89a....", b"\xff\xd8\xff\xd9",
                                  jpeg(64, 48)[:20]])
def test_jpeg_size_unreadable(data: bytes) -> None:
    assert jpeg_size(data) is None


def test_ml_api_parsing() -> None:
    body = json.dumps({"detections": [["failure", 0.5, [10, 20, 30, 40]],
                                      ["failure", 0.25, [1.5, 2.5, 3.5, 4.5]]]}).encode()
    pred = parse_detections(body, 2.0)
    assert pred.p == pytest.approx(1.5)
    assert pred.detections == ((1.0, (10.0, 20.0, 30.0, 40.0)), (0.5, (1.5, 2.5, 3.5, 4.5)))
    assert parse_detections(b'{"detections": []}').p == 0.0
    for bad in (b"[]", b'{"detections": 1}', b'{"detections": [[0.5, [1, 2, 3, 4]]]}',
                b'{"detections": [["f", "x", [1, 2, 3, 4]]]}', b"<html>"):
        with pytest.raises(BadResponse):
            parse_detections(bad)


def test_ml_api_base_url() -> None:
    assert base_url("http://gpu:3333/") == "http://gpu:3333"
    assert base_url("http://gpu:3333/p/") == "http://gpu:3333"
    assert base_url("http://gpu:3333/ml/hc") == "http://gpu:3333/ml"


def test_printwatch_boxes_scale_each_axis() -> None:
    boxes = convert_boxes([[0, 0, 640, 640], [320, 160, 160, 480, 0.4]], 0.9, (1280, 720))
    assert boxes == ((0.9, (640.0, 360.0, 1280.0, 720.0)),
                     (0.4, (480.0, 360.0, 320.0, 360.0)))  # corners given in any order
    assert convert_boxes("[[0, 0, 64, 64]]", 0.5, None) == ((0.5, (32.0, 32.0, 64.0, 64.0)),)
    assert convert_boxes(None, 0.5, None) == ()
    for bad in ([[1, 2, 3]], [["a", 2, 3, 4]], "nonsense", 5):
        with pytest.raises(BadResponse):
            convert_boxes(bad, 0.5, (640, 640))


def answer(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_printwatch_status_codes() -> None:
    pred = parse_answer(answer(statusCode=200, score="0.7", defect_detected="True"), None)
    assert pred.p == pytest.approx(0.7) and pred.detections == ()
    with pytest.raises(RateLimited) as info:
        parse_answer(answer(statusCode=214, interval=30), None)
    assert info.value.retry_after == 30
    with pytest.raises(BadRequest):
        parse_answer(answer(statusCode=215), None)
    with pytest.raises(Unavailable):
        parse_answer(answer(statusCode=217), None)
    for bad in (answer(statusCode=299, score=0.1), answer(score=0.1), answer(statusCode=200),
                answer(statusCode=200, score=0.1, defect_detected="maybe"), b"[1]"):
        with pytest.raises(BadResponse):
            parse_answer(bad, None)


def test_ticket_is_a_uuid_per_print() -> None:
    assert ticket_for("p", "job-1") == ticket_for("p", "job-1")
    assert len({ticket_for("p", "job-1"), ticket_for("p", "job-2"),
                ticket_for("q", "job-1")}) == 3
