"""The decompression-bomb limit: huge pictures are refused from their header, undecoded."""

from __future__ import annotations

import functools
import io
import logging
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from PIL import Image

from failwatch_moonraker.camera.annotate import SnapshotStore, draw
from failwatch_moonraker.camera.mask import parse_mask
from failwatch_moonraker.camera.pixels import (
    MAX_HEADER_STEPS,
    TooManyPixels,
    jpeg_size,
    open_checked,
)
from failwatch_moonraker.camera.snapshot import Camera, CameraError, CameraSource, Frame
from failwatch_moonraker.config import ConfigError, parse_config
from sim.camera import FakeCamera


@functools.lru_cache(maxsize=1)
def bomb_jpeg() -> bytes:
    """A real 9000x9000 JPEG: 81 MP that compress to well under a megabyte."""
    buf = io.BytesIO()
    Image.new("L", (9000, 9000), 128).save(buf, format="JPEG", quality=50)
    return buf.getvalue()


def small_jpeg(size: tuple[int, int] = (320, 240)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 100, 50)).save(buf, format="JPEG")
    return buf.getvalue()


def test_the_size_comes_from_the_header() -> None:
    assert len(bomb_jpeg()) < 2_000_000
    assert jpeg_size(bomb_jpeg()) == (9000, 9000)


def test_the_header_scan_is_bounded() -> None:
    data = small_jpeg()
    app = b"\xff\xe1\x00\x04ab"  # an APP1 segment of 2 bytes
    assert jpeg_size(data[:2] + app * (MAX_HEADER_STEPS - 8) + data[2:]) == (320, 240)
    assert jpeg_size(data[:2] + app * (MAX_HEADER_STEPS + 1) + data[2:]) is None


async def _frame(jpeg: bytes, *, flip_horizontal: bool = False, rotation: int = 0,
                 **camera_options: Any) -> Frame:
    """One frame of a real Camera from a camera on 127.0.0.1 serving ``jpeg``."""
    async with FakeCamera() as fake, aiohttp.ClientSession() as http:
        fake.jpeg = jpeg
        camera = Camera(http, 5.0, 8 * 1024 * 1024, **camera_options)
        camera.source = CameraSource(fake.url, flip_horizontal=flip_horizontal,
                                     rotation=rotation)
        return await camera.frame()


def _refuse_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("Pillow was asked to open the picture")

    monkeypatch.setattr(Image, "open", refuse)


@pytest.mark.parametrize("flip", [False, True])
async def test_a_9000x9000_snapshot_is_a_camera_error_before_decoding(
        flip: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = bomb_jpeg()
    _refuse_decoding(monkeypatch)
    with pytest.raises(CameraError) as info:
        await _frame(bomb, flip_horizontal=flip)
    url = str(info.value).split(" is ")[0].removeprefix("snapshot from ")
    assert url.startswith("http://127.0.0.1:") and url.endswith("/?action=snapshot")
    assert str(info.value) == (
        f"snapshot from {url} is 9000x9000 pixels (81 MP), more than [camera] max_pixels "
        "(40 MP); lower the camera's resolution in crowsnest")


async def test_the_limit_is_the_cameras_own() -> None:
    with pytest.raises(CameraError, match=r"is 1280x720 pixels \(0.9216 MP\), more than "
                                          r"\[camera\] max_pixels \(0.5 MP\);"):
        await _frame(small_jpeg((1280, 720)), max_pixels=500_000)


async def test_a_normal_snapshot_passes_untouched_with_its_size() -> None:
    jpeg = small_jpeg((1280, 720))
    frame = await _frame(jpeg)
    assert frame == Frame(jpeg, (1280, 720))


async def test_a_masked_frame_is_oriented_and_painted_in_one_go() -> None:
    frame = await _frame(small_jpeg((1280, 720)), rotation=90, mask=parse_mask("0,0,0.5,0.25"))
    assert frame.size == (720, 1280)
    pixels = np.asarray(Image.open(io.BytesIO(frame.jpeg)).convert("RGB"), dtype=int)
    assert pixels[:300, :340].max() < 30  # the masked top-left of the turned picture
    assert abs(pixels[700, 500] - np.array([200, 100, 50])).max() < 20  # the rest as it was


def test_the_annotated_snapshot_refuses_a_bomb(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    bomb = bomb_jpeg()
    _refuse_decoding(monkeypatch)
    with pytest.raises(TooManyPixels) as info:
        draw(bomb, [], "caption")
    assert str(info.value) == ("the snapshot to annotate is 9000x9000 pixels (81 MP), more "
                               "than [camera] max_pixels (40 MP)")
    store = SnapshotStore(str(tmp_path / "snaps"), 10, 10 * 1024 * 1024, max_pixels=80_000_000)
    with caplog.at_level(logging.ERROR):
        assert store.save(bomb, [], "caption", "failure") is None
    assert ("cannot save an annotated snapshot in "
            f"{tmp_path / 'snaps'}: the snapshot to annotate is 9000x9000 pixels (81 MP), "
            "more than [camera] max_pixels (80 MP)") in caplog.text
    assert not list((tmp_path / "snaps").glob("*"))


def test_pillows_header_is_checked_when_the_jpeg_reader_cannot_tell() -> None:
    buf = io.BytesIO()
    Image.new("1", (9000, 9000)).save(buf, format="PNG")  # detect takes PNG too
    with pytest.raises(TooManyPixels, match="the picture is 9000x9000 pixels"):
        open_checked(buf.getvalue(), 40_000_000, "the picture")
    with open_checked(small_jpeg(), 40_000_000, "the picture") as img:
        assert img.size == (320, 240)


MINIMAL = "[predictor]\nserial_no: SN-1\naccess_token: tok-123\n"


def test_max_pixels_option() -> None:
    assert parse_config(MINIMAL).camera.max_pixels == 40_000_000
    assert parse_config(MINIMAL + "[camera]\nmax_pixels: 12.5\n").camera.max_pixels == 12_500_000
    for value, message in [("0.05", "must be a number >= 0.1, got '0.05'"),
                           ("400", "must be a number <= 150, got '400'"),
                           ("lots", "must be a number >= 0.1 and <= 150, got 'lots'")]:
        with pytest.raises(ConfigError) as info:
            parse_config(MINIMAL + f"[camera]\nmax_pixels: {value}\n", "/p/failwatch.cfg")
        assert str(info.value) == f"/p/failwatch.cfg: [camera] max_pixels: {message}"
