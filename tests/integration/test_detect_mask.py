"""``failwatch-moonraker detect`` with masks and the pixel limit, as a user runs it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from failwatch_moonraker.camera.mask import HATCH_COLOUR
from sim.cli_run import run_cli
from sim.drawn import spaghetti_jpeg, tangle_box
from sim.predictor import FakeObicoPredictor, split_detections

TANGLE_MASK = "0.2,0.2,0.8,0.9"  # the whole tangle of spaghetti_jpeg (1280x720)


def _config(tmp_path: Path, fake: FakeObicoPredictor, camera: str = "") -> Path:
    cfg = tmp_path / "failwatch.cfg"
    cfg.write_text(f"[predictor]\nurl: {fake.url}\nserial_no: {fake.serial_no}\n"
                   f"access_token: {fake.access_token}\n" + (f"[camera]\n{camera}\n"
                                                             if camera else ""))
    return cfg


async def test_a_masked_tangle_is_not_seen_by_the_local_model(tmp_path: Path) -> None:
    tangle = tmp_path / "tangle.jpg"
    tangle.write_bytes(spaghetti_jpeg())
    x1, y1, x2, y2 = tangle_box()
    assert 0.2 * 1280 < x1 and x2 < 0.8 * 1280 and 0.2 * 720 < y1 and y2 < 0.9 * 720
    cfg = tmp_path / "failwatch.cfg"
    cfg.write_text("[predictor]\nbackend: pinozcam\n")
    code, out, err = await run_cli("detect", str(tangle), "-c", str(cfg), "--json",
                                   timeout=120)
    assert code == 0, err
    assert json.loads(out)["p"] >= 0.9  # seen without the mask
    drawn = tmp_path / "drawn"
    code, out, err = await run_cli("detect", str(tangle), "-c", str(cfg), "--json",
                                   "--mask", TANGLE_MASK, "--annotate", str(drawn), timeout=120)
    assert code == 0, err
    record = json.loads(out)
    assert record["p"] < 0.05 and record["detections"] == []
    assert record["mask"] == TANGLE_MASK
    # The annotated picture shows the masked area hatched.
    picture = np.asarray(Image.open(drawn / "tangle.annotated.jpg").convert("RGB"), dtype=int)
    inside = picture[int(0.3 * 720):int(0.8 * 720), int(0.3 * 1280):int(0.7 * 1280)]
    amber = (np.abs(inside - np.array(HATCH_COLOUR)) <= 60).all(axis=2).mean()
    assert 0.08 < amber < 0.5


async def test_detections_centred_in_the_configured_mask_are_dropped(tmp_path: Path) -> None:
    picture = tmp_path / "picture.jpg"
    picture.write_bytes(spaghetti_jpeg())
    boxes = split_detections(0.7, "failwatch-detect", 0)  # what the fake server answers
    assert len(boxes) == 2
    (conf_a, (xa, ya, _, _)), (conf_b, _) = boxes
    fx, fy = xa / 1280, ya / 720
    around_a = f"{max(0, fx - 0.01):.4f},{max(0, fy - 0.01):.4f},{fx + 0.01:.4f},{fy + 0.01:.4f}"
    async with FakeObicoPredictor(score=lambda frame, pid: 0.7) as fake:
        cfg = _config(tmp_path, fake, f"mask: {around_a}")
        code, out, err = await run_cli("detect", str(picture), "-c", str(cfg))
    assert code == 0, err
    first = out.splitlines()[0]
    assert first.startswith(f"{picture}: p={conf_b:.3f}, 1 detection(s) (1 more centred in the "
                            "mask, dropped), ")
    assert len(fake.requests) == 1


async def test_a_huge_picture_is_not_scored(tmp_path: Path) -> None:
    huge = tmp_path / "huge.jpg"
    buf = io.BytesIO()
    Image.new("L", (9000, 9000), 128).save(buf, format="JPEG", quality=50)
    huge.write_bytes(buf.getvalue())
    fine = tmp_path / "fine.jpg"
    fine.write_bytes(spaghetti_jpeg())
    async with FakeObicoPredictor(score=lambda frame, pid: 0.1) as fake:
        cfg = _config(tmp_path, fake)
        code, out, err = await run_cli("detect", str(huge), str(fine), "-c", str(cfg))
    assert code == 1, err
    assert (f"{huge}: not scored: the picture is 9000x9000 pixels (81 MP), more than "
            "[camera] max_pixels (40 MP); scale it down, or raise [camera] max_pixels") in out
    assert f"{fine}: p=0.100" in out
    assert len(fake.requests) == 1  # only the fine one was sent


async def test_a_bad_mask_option_is_refused(tmp_path: Path) -> None:
    tangle = tmp_path / "tangle.jpg"
    tangle.write_bytes(spaghetti_jpeg())
    code, out, err = await run_cli("detect", str(tangle), "--set", "backend=pinozcam",
                                   "--mask", "0.5,0,0.2,1")
    assert code == 2 and out == ""
    assert err == ("failwatch-moonraker detect: --mask: rectangle 1 '0.5,0,0.2,1': x2 (0.2) "
                   "must be greater than x1 (0.5); give the top-left corner first, then the "
                   "bottom-right one\n")
