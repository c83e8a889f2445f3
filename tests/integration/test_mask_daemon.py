"""Masks through the real Moonraker (issue 11 item 3): what the mask hides cannot pause.

The predictor here scores what the picture shows: a bright red patch (the purge
bucket of the story) is "spaghetti" to it. With a mask over the patch, failwatch
paints it out before the predictor sees the frame and the print goes on; without
the mask the same camera pauses the print.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from sim.camera import make_snapshot_jpeg
from sim.daemon_config import config_for, seed_established_printer
from sim.harness import SimPrinter
from sim.waits import running_daemon, wait_until

pytestmark = pytest.mark.usefixtures("require_moonraker")

QUIET = 0.02
BAD = 3.0
PATCH = (0.80, 0.05, 0.95, 0.30)  # the red thing, in fractions of the frame


def scene_with_red_patch() -> bytes:
    with Image.open(io.BytesIO(make_snapshot_jpeg())) as img:
        scene = img.convert("RGB")
    w, h = scene.size
    ImageDraw.Draw(scene).rectangle(
        (PATCH[0] * w, PATCH[1] * h, PATCH[2] * w, PATCH[3] * h), fill=(255, 0, 0))
    out = io.BytesIO()
    scene.save(out, "JPEG", quality=90)
    return out.getvalue()


def red_is_spaghetti(jpeg: bytes) -> float:
    with Image.open(io.BytesIO(jpeg)) as img:
        px = np.asarray(img.convert("RGB")).astype(int)
    red = (px[..., 0] > 180) & (px[..., 1] < 80) & (px[..., 2] < 80)
    return BAD if red.sum() > 500 else QUIET


async def watch_the_patch(tmp_path: Path, camera: dict[str, object],
                          frames: int = 30) -> tuple[SimPrinter, list[str], str]:
    async with SimPrinter() as printer:
        printer.camera.jpeg = scene_with_red_patch()
        printer.predictor.look = red_is_spaghetti
        cfg = config_for(printer, tmp_path / "failwatch.cfg", detection={"safe_frames": 0},
                         snapshots={"path": str(tmp_path / "snaps")},
                         camera={"snapshot_url": printer.camera.url, **camera})
        seed_established_printer(tmp_path)
        async with running_daemon(cfg) as daemon:
            await printer.start_print("benchy.gcode")
            await wait_until(lambda: daemon.session.stats.prediction_num >= frames
                             or printer.klippy.status["print_stats"]["state"] == "paused",
                             30, f"{frames} frames or a pause")
            test = await daemon.commands.test_frame()
        pauses = [line for line in printer.klippy.gcode_lines if line.split()[:1] == ["PAUSE"]]
        return printer, pauses, test


async def test_without_a_mask_the_red_patch_pauses(tmp_path: Path) -> None:
    printer, pauses, _test = await watch_the_patch(tmp_path, {})
    assert pauses == ["PAUSE"]
    assert printer.klippy.status["print_stats"]["state"] == "paused"


async def test_a_mask_over_it_keeps_the_print_running(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    mask = ",".join(f"{v:g}" for v in (PATCH[0] - 0.02, PATCH[1] - 0.02,
                                       PATCH[2] + 0.02, PATCH[3] + 0.02))
    printer, pauses, test = await watch_the_patch(tmp_path, {"mask": mask})
    assert pauses == []
    assert printer.klippy.status["print_stats"]["state"] == "printing"
    # every frame the predictor got had the patch painted out
    assert printer.predictor.requests and \
        all(r["response"]["result"]["p"] < 1 for r in printer.predictor.requests
            if "response" in r)
    # FAILWATCH_TEST says what is masked, and its snapshot shows it
    assert f"masked {mask}" in test and "p=0.0" in test
    (saved,) = (tmp_path / "snaps").glob("*test-*.jpg")
    with Image.open(saved) as img:
        px = np.asarray(img.convert("RGB")).astype(int)
    h, w = px.shape[:2]
    inside = px[int(PATCH[1] * h):int(PATCH[3] * h), int(PATCH[0] * w):int(PATCH[2] * w)]
    amber = (inside[..., 0] > 200) & (inside[..., 1] > 110) & (inside[..., 1] < 230) & \
        (inside[..., 2] < 90)
    assert amber.sum() > 200, "the masked area is hatched on the saved snapshot"
