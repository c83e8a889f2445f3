"""The fake camera and the fake Obico predictor behave as their contracts say."""

from __future__ import annotations

import asyncio
import io
import json

import aiohttp
import pytest
from PIL import Image

from sim.camera import FakeCamera
from sim.predictor import PREDICT_PATH, FakeObicoPredictor

pytestmark = pytest.mark.timeout(30)

SHORT = aiohttp.ClientTimeout(total=0.5)


async def test_camera_snapshot_routes(fake_camera: FakeCamera) -> None:
    assert fake_camera.url == f"{fake_camera.base_url}/?action=snapshot"
    with Image.open(io.BytesIO(fake_camera.jpeg)) as img:
        assert img.format == "JPEG" and img.size == (1280, 720)
    assert 100_000 <= len(fake_camera.jpeg) <= 200_000
    async with aiohttp.ClientSession() as session:
        for path in ("/snapshot", "/snapshot.jpg", "/?action=snapshot", "/webcam/?action=snapshot"):
            async with session.get(fake_camera.base_url + path) as resp:
                assert resp.status == 200, path
                assert resp.content_type == "image/jpeg"
                assert await resp.read() == fake_camera.jpeg
    assert fake_camera.requests == 4


async def test_camera_failure_modes(fake_camera: FakeCamera) -> None:
    async with aiohttp.ClientSession() as session:
        fake_camera.mode = "error"
        async with session.get(fake_camera.url) as resp:
            assert resp.status == 500
        fake_camera.mode = "not_jpeg"
        async with session.get(fake_camera.url) as resp:
            assert resp.status == 200 and resp.content_type == "text/html"
            assert not (await resp.read()).startswith(b"\xff\xd8")
        fake_camera.mode = "hang"
        with pytest.raises(asyncio.TimeoutError):
            async with session.get(fake_camera.url, timeout=SHORT) as resp:
                await resp.read()
        fake_camera.mode = "refused"
        with pytest.raises(aiohttp.ClientConnectorError):
            async with session.get(fake_camera.url, timeout=SHORT) as resp:
                await resp.read()
        await fake_camera.set_mode("ok")
        async with session.get(fake_camera.url) as resp:
            assert resp.status == 200 and await resp.read() == fake_camera.jpeg
    assert fake_camera.requests == 4  # the refused one never arrived


def _form(predictor: FakeObicoPredictor, **overrides: object) -> aiohttp.FormData:
    fields: dict[str, object] = {
        "serial_no": predictor.serial_no, "access_token": predictor.access_token,
        "print_id": "job-000001", "img": _JPEG,
    }
    fields.update(overrides)
    form = aiohttp.FormData()
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, bytes):
            form.add_field(key, value, filename="snap.jpg", content_type="image/jpeg")
        else:
            form.add_field(key, str(value))
    return form


def _small_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 36), (120, 80, 40)).save(out, "JPEG")
    return out.getvalue()


_JPEG = _small_jpeg()


async def _post(predictor: FakeObicoPredictor, form: aiohttp.FormData,
                timeout: aiohttp.ClientTimeout | None = None) -> tuple[int, str, dict[str, str]]:
    async with aiohttp.ClientSession() as session:
        async with session.post(predictor.url, data=form, timeout=timeout) as resp:
            return resp.status, await resp.text(), dict(resp.headers)


async def test_predictor_success_and_stats(fake_predictor: FakeObicoPredictor) -> None:
    assert fake_predictor.url.endswith(PREDICT_PATH)
    fake_predictor.score = lambda frame, print_id: 0.02 if frame < 2 else 1.5
    results = []
    for _ in range(3):
        status, body, _ = await _post(fake_predictor, _form(fake_predictor))
        assert status == 200
        results.append(json.loads(body)["result"])
    first, _, third = results
    assert first["p"] == pytest.approx(0.02)
    assert len(first["detections"]) == 1
    assert third["p"] == pytest.approx(1.5)
    assert 1 <= len(third["detections"]) <= 3
    assert sum(d[0] for d in third["detections"]) == pytest.approx(third["p"])
    for conf, (xc, yc, w, h) in third["detections"]:
        assert 0 < conf <= 1 and 0 <= xc <= 1280 and 0 <= yc <= 720 and w > 0 and h > 0
    stats = third["temporal_stats"]
    assert stats["prediction_num"] == 3 and stats["prediction_num_lifetime"] == 3
    assert stats["rolling_mean_short"] == pytest.approx((0.02 + 0.02 + 1.5) / 3)
    assert 0.02 < stats["ewm_mean"] < 1.5
    # A new print id restarts the per-print numbers but not the lifetime ones.
    status, body, _ = await _post(fake_predictor, _form(fake_predictor, print_id="job-000002"))
    other = json.loads(body)["result"]["temporal_stats"]
    assert other["prediction_num"] == 1 and other["prediction_num_lifetime"] == 4
    record = fake_predictor.requests[0]
    assert record["print_id"] == "job-000001" and record["img_size"] == len(_JPEG)
    assert record["status"] == 200 and "img" not in record


@pytest.mark.parametrize(
    ("overrides", "status", "error"),
    [
        ({"serial_no": None}, 401, "serial_no and access_token are required"),
        ({"access_token": ""}, 401, "serial_no and access_token are required"),
        ({"access_token": "wrong"}, 401, "Invalid credentials"),
        ({"print_id": None}, 400, "print_id is required"),
        ({"print_id": "x" * 257}, 400, None),
        ({"img": None}, 400, "Missing or invalid image"),
        ({"img": b"<html>not a jpeg</html>"}, 400, "Missing or invalid image"),
    ],
)
async def test_predictor_contract_errors(
    fake_predictor: FakeObicoPredictor, overrides: dict[str, object], status: int,
    error: str | None,
) -> None:
    got, body, _ = await _post(fake_predictor, _form(fake_predictor, **overrides))
    assert got == status
    message = json.loads(body)["error"]
    if error is not None:
        assert message == error


async def test_predictor_forced_modes(fake_predictor: FakeObicoPredictor) -> None:
    fake_predictor.mode = "429"
    fake_predictor.retry_after = 7
    status, body, headers = await _post(fake_predictor, _form(fake_predictor))
    assert status == 429 and headers["Retry-After"] == "7"
    assert json.loads(body) == {
        "error": "You are running too hot! Take it easy buddy..."}
    fake_predictor.mode = "500"
    assert (await _post(fake_predictor, _form(fake_predictor)))[0] == 500
    fake_predictor.mode = "malformed"
    status, body, _ = await _post(fake_predictor, _form(fake_predictor))
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(body)
    fake_predictor.mode = "hang"
    with pytest.raises(asyncio.TimeoutError):
        await _post(fake_predictor, _form(fake_predictor), timeout=SHORT)
    fake_predictor.mode = "ok"
    assert (await _post(fake_predictor, _form(fake_predictor)))[0] == 200
    assert [r["status"] for r in fake_predictor.requests] == [429, 500, 200, None, 200]
