"""Camera discovery, URL resolution and orientation."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from failwatch_moonraker.camera.snapshot import (
    CameraSource,
    pick_webcam,
    resolve_url,
    snapshot_url_of,
    source_from_webcam,
    transform_jpeg,
    web_base_from_moonraker,
)
from sim.drawn import marked_jpeg


@pytest.mark.parametrize(
    ("moonraker", "base"),
    [
        ("ws://127.0.0.1:7125/websocket", "http://127.0.0.1"),
        ("ws://voron.local:7125/websocket", "http://voron.local"),
        ("wss://printer.example:443/websocket", "https://printer.example"),
        ("ws://[::1]:7125/websocket", "http://[::1]"),
    ],
)
def test_relative_webcam_urls_live_on_the_web_server_of_moonrakers_host(moonraker: str,
                                                                         base: str) -> None:
    assert web_base_from_moonraker(moonraker) == base


@pytest.mark.parametrize(
    ("url", "resolved"),
    [
        ("/webcam/?action=snapshot", "http://voron.local/webcam/?action=snapshot"),
        ("webcam2/?action=snapshot", "http://voron.local/webcam2/?action=snapshot"),
        ("http://10.0.0.5:8080/?action=snapshot", "http://10.0.0.5:8080/?action=snapshot"),
        ("//cam.local/snapshot", "http://cam.local/snapshot"),
    ],
)
def test_resolve_url(url: str, resolved: str) -> None:
    assert resolve_url(url, "http://voron.local") == resolved


def test_snapshot_url_derived_from_stream() -> None:
    assert snapshot_url_of({"snapshot_url": "", "stream_url": "/webcam/?action=stream"}) == (
        "/webcam/?action=snapshot")
    assert snapshot_url_of({"stream_url": "/webcam/webrtc"}) == "/webcam/snapshot"
    assert snapshot_url_of({"stream_url": "http://x:8080/stream"}) == "http://x:8080/snapshot"
    assert snapshot_url_of({"stream_url": ""}) == ""


def test_pick_webcam_first_enabled_or_by_name() -> None:
    cams = [
        {"name": "off", "enabled": False, "snapshot_url": "/a"},
        {"name": "nourl", "enabled": True, "snapshot_url": "", "stream_url": ""},
        {"name": "top", "enabled": True, "snapshot_url": "/webcam2/?action=snapshot"},
        {"name": "side", "enabled": True, "snapshot_url": "/webcam3/?action=snapshot"},
    ]
    assert pick_webcam(cams)["name"] == "top"  # type: ignore[index]
    assert pick_webcam(cams, "side")["name"] == "side"  # type: ignore[index]
    assert pick_webcam(cams, "nope") is None
    assert pick_webcam([]) is None


def test_source_takes_moonrakers_orientation_unless_the_user_set_one() -> None:
    cam = {"name": "c", "snapshot_url": "/webcam/?action=snapshot", "flip_horizontal": True,
           "flip_vertical": False, "rotation": 90}
    src = source_from_webcam(cam, "http://h")
    assert src == CameraSource("http://h/webcam/?action=snapshot", "c", True, False, 90)
    src = source_from_webcam(cam, "http://h", flip_horizontal=False, rotation=0)
    assert (src.flip_horizontal, src.rotation, src.needs_transform) == (False, 0, False)


def _bright(img: Image.Image, xy: tuple[int, int]) -> bool:
    return sum(img.convert("RGB").getpixel(xy)) > 600  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("flip_h", "flip_v", "rotation", "size", "white_at"),
    [
        (True, False, 0, (40, 20), (37, 1)),  # mirrored: block now top-right
        (False, True, 0, (40, 20), (2, 18)),  # upside down: bottom-left
        (False, False, 90, (20, 40), (18, 2)),  # clockwise: top-left goes top-right
        (False, False, 180, (40, 20), (37, 18)),
        (False, False, 270, (20, 40), (2, 37)),
    ],
)
def test_transform_moves_the_pixels(flip_h: bool, flip_v: bool, rotation: int,
                                    size: tuple[int, int], white_at: tuple[int, int]) -> None:
    out = transform_jpeg(marked_jpeg(), CameraSource("x", "", flip_h, flip_v, rotation))
    img = Image.open(io.BytesIO(out))
    assert img.size == size
    assert _bright(img, white_at)
    assert not _bright(img, (size[0] // 2, size[1] // 2))
