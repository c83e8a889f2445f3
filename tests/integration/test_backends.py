"""The obico_ml_api and printwatch backends against local fakes of their servers.

Each fake follows its documented contract (sim/ml_api.py, sim/printwatch.py);
every error answer must land in the right class of the predictor taxonomy,
and the ML server's one-time image URL must serve the frame once and then 404.
"""

from __future__ import annotations

import base64
import socket
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from failwatch_moonraker.config import parse_config
from failwatch_moonraker.predictors import (
    AuthError,
    BadRequest,
    BadResponse,
    PredictContext,
    RateLimited,
    Unavailable,
    create_predictor,
    start_predictor,
)
from failwatch_moonraker.predictors.remote import frameserver
from failwatch_moonraker.predictors.remote.ml_api import ObicoMLAPIPredictor
from failwatch_moonraker.predictors.remote.printwatch import PrintWatchPredictor, ticket_for
from sim.camera import FakeCamera, make_snapshot_jpeg
from sim.ml_api import FakeMLAPI
from sim.printwatch import BOX_640, FakePrintWatch

JPEG = make_snapshot_jpeg()  # 1280 x 720


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def ml_api() -> AsyncIterator[FakeMLAPI]:
    async with FakeMLAPI(token="ml-token") as server:
        yield server


@pytest.fixture
async def printwatch() -> AsyncIterator[FakePrintWatch]:
    async with FakePrintWatch() as server:
        yield server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def ml_predictor(http: aiohttp.ClientSession, server: FakeMLAPI, *, token: str = "ml-token",
                       timeout: float = 5.0, **kwargs: object) -> ObicoMLAPIPredictor:
    options = {"bind": "127.0.0.1", "port": 0, **kwargs}
    predictor = ObicoMLAPIPredictor(http, server.url, token, timeout, **options)  # type: ignore[arg-type]
    await start_predictor(predictor)
    return predictor


# -- obico_ml_api ---------------------------------------------------------------------


async def test_ml_api_scores_the_served_frame(http: aiohttp.ClientSession,
                                              ml_api: FakeMLAPI) -> None:
    ml_api.score = lambda frame, url: 1.5
    ml_api.refetch = True
    predictor = await ml_predictor(http, ml_api)
    try:
        pred = await predictor.predict(JPEG, "job-1")
        assert predictor.server is not None and predictor.server.pending == 0
    finally:
        await predictor.close()
    record = ml_api.requests[0]
    assert record["authorization"] == "Bearer ml-token"
    # the ML server downloaded our frame, byte for byte, from a one-time URL ...
    assert record["download_status"] == 200 and record["img_size"] == len(JPEG)
    assert record["img"].startswith(predictor.image_base + frameserver.PREFIX)
    # ... and a second download of the same URL is refused
    assert record["refetch_status"] == 404
    # p is the sum of the confidences; boxes in pixels of the sent image
    assert pred.p == pytest.approx(1.5)
    assert len(pred.detections) == 3
    expected = [(d[1], tuple(d[2])) for d in record["detections"]]
    assert list(pred.detections) == expected
    assert all(0 < xc < 1280 and 0 < yc < 720 for _, (xc, yc, _w, _h) in pred.detections)


async def test_ml_api_image_url_is_gone_after_the_call(http: aiohttp.ClientSession,
                                                       ml_api: FakeMLAPI) -> None:
    predictor = await ml_predictor(http, ml_api)
    try:
        await predictor.predict(JPEG, "job-1")
        ml_api.mode = "400"  # the server downloads, then refuses the picture
        with pytest.raises(BadRequest):
            await predictor.predict(JPEG, "job-1")
        for record in ml_api.requests:
            async with http.get(record["img"]) as resp:
                assert resp.status == 404
        async with http.get(predictor.image_base + "/anything") as resp:
            assert resp.status == 404
        assert predictor.server is not None
        assert predictor.server.pending == 0 and predictor.server.served == 2
    finally:
        await predictor.close()


async def test_ml_api_bending_factor_scales_every_confidence(http: aiohttp.ClientSession,
                                                             ml_api: FakeMLAPI) -> None:
    ml_api.score = lambda frame, url: 0.8
    predictor = await ml_predictor(http, ml_api, bending_factor=0.5)
    try:
        pred = await predictor.predict(JPEG, "job-1")
    finally:
        await predictor.close()
    confs = [d[1] for d in ml_api.requests[0]["detections"]]
    assert pred.p == pytest.approx(0.4)
    assert [c for c, _ in pred.detections] == pytest.approx([c * 0.5 for c in confs])


@pytest.mark.parametrize(
    ("mode", "error", "text"),
    [
        ("400", BadRequest, "could not use the frame (HTTP 400): Failed to download image"),
        ("401", AuthError, "refused the token (HTTP 401)"),
        ("422", BadRequest, "(HTTP 422)"),
        ("429", RateLimited, "HTTP 429"),
        ("500", Unavailable, "answered HTTP 500"),
        ("503", Unavailable, "answered HTTP 503"),
        ("malformed", BadResponse, "not JSON"),
    ],
)
async def test_ml_api_errors(http: aiohttp.ClientSession, ml_api: FakeMLAPI, mode: str,
                             error: type[Exception], text: str) -> None:
    ml_api.mode = mode
    predictor = await ml_predictor(http, ml_api)
    try:
        with pytest.raises(error) as info:
            await predictor.predict(JPEG, "job-1")
        assert predictor.server is not None and predictor.server.pending == 0  # no leak
    finally:
        await predictor.close()
    assert text in str(info.value)
    if mode == "429":
        assert isinstance(info.value, RateLimited) and info.value.retry_after == 7


async def test_ml_api_wrong_token_and_timeout(http: aiohttp.ClientSession,
                                              ml_api: FakeMLAPI) -> None:
    predictor = await ml_predictor(http, ml_api, token="wrong")
    try:
        with pytest.raises(AuthError):
            await predictor.predict(JPEG, "job-1")
    finally:
        await predictor.close()
    assert ml_api.requests[-1]["authorization"] == "Bearer wrong"
    ml_api.mode = "hang"
    predictor = await ml_predictor(http, ml_api, timeout=1.0)
    try:
        with pytest.raises(Unavailable, match="no answer within 1 s"):
            await predictor.predict(JPEG, "job-1")
        assert predictor.server is not None and predictor.server.pending == 0
    finally:
        await predictor.close()


async def test_ml_api_unreachable(http: aiohttp.ClientSession) -> None:
    predictor = ObicoMLAPIPredictor(http, f"http://127.0.0.1:{free_port()}", "", 2.0,
                                    bind="127.0.0.1", port=0)
    try:
        with pytest.raises(Unavailable, match="cannot reach"):
            await predictor.predict(JPEG, "job-1")
        assert predictor.server is not None and predictor.server.pending == 0
    finally:
        await predictor.close()


async def test_ml_api_camera_source_passes_the_camera_url(http: aiohttp.ClientSession,
                                                          ml_api: FakeMLAPI) -> None:
    async with FakeCamera() as camera:
        predictor = await ml_predictor(http, ml_api, image_source="camera")
        try:
            assert predictor.needs_context and predictor.server is None  # nothing served
            pred = await predictor.predict(JPEG, "job-1",
                                           PredictContext(snapshot_url=camera.url))
            with pytest.raises(BadRequest, match="no camera snapshot URL"):
                await predictor.predict(JPEG, "job-1")
        finally:
            await predictor.close()
    assert ml_api.requests[0]["img"] == camera.url
    assert ml_api.requests[0]["img_size"] == len(camera.jpeg)
    assert len(ml_api.requests) == 1
    assert pred.p == pytest.approx(0.02)


async def test_ml_api_health(http: aiohttp.ClientSession, ml_api: FakeMLAPI) -> None:
    predictor = ObicoMLAPIPredictor(http, ml_api.url + "/p/", "", 5.0)
    assert predictor.url == ml_api.url  # a pasted /p/ is tolerated
    assert await predictor.health() == "ok"
    ml_api.healthy = False
    with pytest.raises(Unavailable, match="expected 'ok'"):
        await predictor.health()


async def test_frame_server_port_taken_is_reported_and_retried(http: aiohttp.ClientSession,
                                                                ml_api: FakeMLAPI) -> None:
    port = free_port()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        predictor = ObicoMLAPIPredictor(http, ml_api.url, "ml-token", 5.0,
                                        bind="127.0.0.1", port=port)
        with pytest.raises(Unavailable, match=f"cannot serve frames on 127.0.0.1:{port}"):
            await predictor.start()
        with pytest.raises(Unavailable):
            await predictor.predict(JPEG, "job-1")
    # the port is free again: the next frame binds it
    try:
        pred = await predictor.predict(JPEG, "job-1")
        assert pred.p == pytest.approx(0.02)
        assert predictor.server is not None and predictor.server.port == port
    finally:
        await predictor.close()


async def test_printers_share_one_frame_server(http: aiohttp.ClientSession,
                                               ml_api: FakeMLAPI) -> None:
    port = free_port()
    a = await ml_predictor(http, ml_api, port=port)
    b = await ml_predictor(http, ml_api, port=port)
    assert a.server is b.server and a.server is not None
    server = a.server
    await a.close()
    assert server.running
    await b.predict(JPEG, "job-1")
    await b.close()
    assert not server.running
    with pytest.raises(aiohttp.ClientConnectionError):  # nobody listens any more
        async with http.get(f"http://127.0.0.1:{port}/"):
            pass


async def test_public_base(ml_api: FakeMLAPI) -> None:
    assert await frameserver.public_base("127.0.0.1", 7135, ml_api.url) == \
        "http://127.0.0.1:7135"
    # a wildcard bind advertises the address that routes to the ML server
    assert await frameserver.public_base("0.0.0.0", 7135, ml_api.url) == \
        "http://127.0.0.1:7135"
    assert await frameserver.public_base("::1", 80, ml_api.url) == "http://[::1]:80"


async def test_ml_api_from_config(http: aiohttp.ClientSession, ml_api: FakeMLAPI) -> None:
    config = parse_config(
        f"[predictor]\nbackend: obico_ml_api\nurl: {ml_api.url}\naccess_token: ml-token\n"
        "bending_factor: 2\nimage_bind: 127.0.0.1\nimage_port: 0\n")
    predictor = create_predictor(config.predictor, http)
    assert isinstance(predictor, ObicoMLAPIPredictor)
    await start_predictor(predictor)
    try:
        ml_api.score = lambda frame, url: 0.3
        pred = await predictor.predict(JPEG, "job-1")
    finally:
        await predictor.close()
    assert pred.p == pytest.approx(0.6)


# -- printwatch -----------------------------------------------------------------------

CONTEXT = PredictContext(printer="voron", state="printing", filename="benchy.gcode",
                         progress=0.25, print_duration=600.0, total_duration=660.0)


def pw(http: aiohttp.ClientSession, server: FakePrintWatch, key: str = "sub_sim-key",
       timeout: float = 5.0) -> PrintWatchPredictor:
    return PrintWatchPredictor(http, server.url, key, "failwatch-test", timeout,
                               confidence=0.6, buffer_length=16, buffer_percent=60.0)


async def test_printwatch_request_and_answer(http: aiohttp.ClientSession,
                                             printwatch: FakePrintWatch) -> None:
    printwatch.score = lambda frame, ticket: 0.72
    predictor = pw(http, printwatch)
    pred = await predictor.predict(JPEG, "job-1", CONTEXT)
    record = printwatch.requests[0]
    body = record["body"]
    assert record["content_type"] == "application/json"
    assert record["user_agent"].startswith("Mozilla/5.0")
    assert body["api_key"] == "sub_sim-key" and body["printer_id"] == "failwatch-test"
    assert uuid.UUID(body["ticket_id"]) and body["ticket_id"] == ticket_for("failwatch-test",
                                                                           "job-1")
    assert body["state"] == 0 and body["job_name"] == "benchy.gcode"
    assert body["progress"] == 25.0 and body["printTime"] == 600
    assert body["printTimeLeft"] == 1800
    assert body["conf"] == 0.6 and body["buffer_length"] == 16 and body["buffer_percent"] == 60
    assert body["scores"] == []
    assert record["img_size"] == len(base64.b64encode(JPEG))
    # score is p; the 640-space xyxy box in pixels of the 1280x720 frame
    assert pred.p == pytest.approx(0.72)
    x1, y1, x2, y2 = BOX_640
    sx, sy = 1280 / 640, 720 / 640
    assert pred.detections == ((0.72, ((x1 + x2) / 2 * sx, (y1 + y2) / 2 * sy,
                                       (x2 - x1) * sx, (y2 - y1) * sy)),)
    assert pred.detections[0][1] == pytest.approx((384.0, 288.0, 512.0, 288.0))
    assert pred.raw["defect_detected"] is True and pred.raw["levels"] == [True, True]


async def test_printwatch_ticket_is_new_per_print(http: aiohttp.ClientSession,
                                                  printwatch: FakePrintWatch) -> None:
    predictor = pw(http, printwatch)
    for print_id in ("job-1", "job-1", "job-2"):
        await predictor.predict(JPEG, print_id, CONTEXT)
    t1, t1b, t2 = (r["body"]["ticket_id"] for r in printwatch.requests)
    assert t1 == t1b != t2
    # the history of scores sent along is this print's only
    assert [len(r["body"]["scores"]) for r in printwatch.requests] == [0, 1, 0]
    # the same print after a restart keeps its ticket
    assert pw(http, printwatch).payload(JPEG, "job-1", None)["ticket_id"] == t1


async def test_printwatch_legacy_spellings(http: aiohttp.ClientSession,
                                           printwatch: FakePrintWatch) -> None:
    printwatch.mode = "string_fields"
    printwatch.score = lambda frame, ticket: 0.9
    pred = await pw(http, printwatch).predict(JPEG, "job-1", CONTEXT)
    assert pred.p == pytest.approx(0.9) and len(pred.detections) == 1


@pytest.mark.parametrize(
    ("mode", "error", "text", "retry_after"),
    [
        ("400", BadRequest, "refused the frame (HTTP 400)", None),
        ("401", AuthError, "refused the api_key (HTTP 401)", None),
        ("429", RateLimited, "HTTP 429", 12.0),
        ("500", Unavailable, "answered HTTP 500", None),
        ("213", RateLimited, "statusCode 213", 300.0),
        ("214", RateLimited, "statusCode 214", 300.0),
        ("218", RateLimited, "statusCode 218", 300.0),
        ("215", BadRequest, "statusCode 215", None),
        ("217", Unavailable, "statusCode 217", None),
        ("malformed", BadResponse, "not JSON", None),
    ],
)
async def test_printwatch_errors(http: aiohttp.ClientSession, printwatch: FakePrintWatch,
                                 mode: str, error: type[Exception], text: str,
                                 retry_after: float | None) -> None:
    printwatch.mode = mode
    with pytest.raises(error) as info:
        await pw(http, printwatch).predict(JPEG, "job-1", CONTEXT)
    assert text in str(info.value)
    if isinstance(info.value, RateLimited):
        assert info.value.retry_after == retry_after
    assert "sub_sim-key" not in str(info.value)


async def test_printwatch_back_off_uses_the_servers_interval(http: aiohttp.ClientSession,
                                                            printwatch: FakePrintWatch) -> None:
    printwatch.mode = "213"
    printwatch.interval = 45
    with pytest.raises(RateLimited) as info:
        await pw(http, printwatch).predict(JPEG, "job-1", CONTEXT)
    assert info.value.retry_after == 45


async def test_printwatch_wrong_key_bad_image_and_timeout(http: aiohttp.ClientSession,
                                                          printwatch: FakePrintWatch) -> None:
    with pytest.raises(AuthError):
        await pw(http, printwatch, key="sub_wrong").predict(JPEG, "job-1", CONTEXT)
    with pytest.raises(Unavailable, match="statusCode 217"):
        await pw(http, printwatch).predict(b"not a jpeg", "job-1", CONTEXT)
    with pytest.raises(BadRequest, match="statusCode 215"):  # no api_key at all
        await pw(http, printwatch, key="").predict(JPEG, "job-1", CONTEXT)
    printwatch.mode = "hang"
    with pytest.raises(Unavailable, match="no answer within 1 s"):
        await pw(http, printwatch, timeout=1.0).predict(JPEG, "job-1", CONTEXT)


async def test_printwatch_from_config(http: aiohttp.ClientSession,
                                      printwatch: FakePrintWatch) -> None:
    config = parse_config(
        f"[predictor]\nbackend: printwatch\nurl: {printwatch.url}\napi_key: sub_sim-key\n"
        "[detection]\npolicy: buffer\nbuffer_confidence: 0.4\nbuffer_length: 8\n")
    assert "sub_sim-key" in config.secrets()
    assert "sub_sim-key" not in repr(config)
    predictor = create_predictor(config.predictor, http, detection=config.detection,
                                 printer_name="voron")
    assert isinstance(predictor, PrintWatchPredictor)
    assert predictor.printer_id == f"failwatch-{socket.gethostname()}-voron"
    assert "sub_sim-key" not in repr(predictor)
    await predictor.predict(JPEG, "job-1", None)
    body = printwatch.requests[0]["body"]
    assert body["conf"] == 0.4 and body["buffer_length"] == 8
    assert body["state"] == 0 and body["progress"] == 0.0  # no context: safe defaults
