"""Annotated snapshots survive hostile names and boxes (issue 10 item 12)."""

from __future__ import annotations

import io
import logging
import math
from pathlib import Path

import pytest
from PIL import Image

from failwatch_moonraker.camera.annotate import SnapshotStore, draw


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (160, 120), (40, 40, 40)).save(buf, format="JPEG")
    return buf.getvalue()


def test_a_300_character_print_id_still_gives_a_snapshot(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = SnapshotStore(str(tmp_path), 10, 10**7)
    name = "failure-" + "a/very/long/fallback/print-id.gcode@1750000000" * 8
    assert len(name) > 300
    with caplog.at_level(logging.ERROR):
        saved = store.save(_jpeg(), [], "caption", name)
    assert saved is not None and saved.path.exists()
    assert len(saved.path.name.encode()) <= 255 and saved.path.name.endswith(".jpg")
    assert "cannot save" not in caplog.text


BAD_BOXES = [
    (0.9, (50.0, 50.0, -40.0, 40.0)),  # inverted width
    (0.9, (50.0, 50.0, 40.0, -40.0)),  # inverted height
    (0.9, (math.nan, 50.0, 40.0, 40.0)),
    (0.9, (50.0, math.inf, 40.0, 40.0)),
    (0.9, (50.0, 50.0, math.inf, 40.0)),
    (math.nan, (50.0, 50.0, 40.0, 40.0)),
    (0.9, (1e308, -1e308, 1e308, 1e308)),
    (0.9, (-500.0, -500.0, 10.0, 10.0)),  # wholly outside: clipped to a corner
]


def test_inverted_nan_or_infinite_boxes_are_skipped_not_a_crash() -> None:
    out = Image.open(io.BytesIO(draw(_jpeg(), BAD_BOXES + [(0.9, (80.0, 60.0, 40.0, 40.0))],
                                     "caption")))
    assert out.size == (160, 120)
    r, g, b = out.getpixel((60, 60))[:3]  # type: ignore[misc, index]
    assert g > 150 and r < 100  # the one good box was drawn (its left edge at x=60)


def test_a_snapshot_with_bad_boxes_is_saved(tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    store = SnapshotStore(str(tmp_path), 10, 10**7)
    with caplog.at_level(logging.ERROR):
        saved = store.save(_jpeg(), BAD_BOXES, "caption", "failure")
    assert saved is not None and saved.path.exists()
    assert "cannot save" not in caplog.text
