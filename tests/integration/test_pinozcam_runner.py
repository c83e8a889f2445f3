"""PiNozCam's real runner and model (pinozcam-runtime from PyPI) on pictures drawn here.

Few frames on purpose: one scoring uses ~180 % CPU of the shared machine.
"""

from __future__ import annotations

import pytest

from failwatch_moonraker.config import parse_config
from failwatch_moonraker.predictors.local.pinozcam import PinozcamPredictor, find_runtime
from sim.drawn import bed_jpeg, part_jpeg, portrait, spaghetti_jpeg, tangle_box


@pytest.fixture
async def predictor():  # type: ignore[no-untyped-def]
    cfg = parse_config("[predictor]\nbackend: pinozcam\ntimeout: 60\n")
    pred = PinozcamPredictor(cfg.predictor)
    yield pred
    await pred.close()


def test_the_installed_runtime_matches_its_manifest() -> None:
    rt = find_runtime()
    assert rt.module == "pinozcam_runner"
    assert rt.runner.endswith(".static") and rt.model.endswith(".pte")


async def test_real_model_on_drawn_pictures(predictor: PinozcamPredictor) -> None:
    empty = await predictor.predict(bed_jpeg(), "t")
    assert empty.p == pytest.approx(0.0, abs=0.05) and not empty.detections
    part = await predictor.predict(part_jpeg(), "t")
    assert part.p == pytest.approx(0.0, abs=0.05)
    assert not part.detections  # some weak boxes, none above 0.87
    tangle = await predictor.predict(spaghetti_jpeg(), "t")
    assert tangle.p >= 0.9
    assert tangle.detections
    x1, y1, x2, y2 = tangle_box()
    for conf, (xc, yc, w, h) in tangle.detections:
        assert conf > 0.87
        assert x1 - 20 <= xc <= x2 + 20 and y1 - 20 <= yc <= y2 + 20, (xc, yc)
        assert 0 < w <= 1280 and 0 < h <= 720
    facts = predictor.engine_facts()
    assert facts["package"] == "pinozcam-runtime" and facts["version"]
    assert facts["nice"] == 10 and facts["rss_mb"] and facts["rss_mb"] < 300
    assert facts["startup_s"] > 0 and facts["last_ms"] > 0


async def test_real_model_on_a_portrait_camera(predictor: PinozcamPredictor) -> None:
    tangle = await predictor.predict(portrait(spaghetti_jpeg()), "t")
    assert tangle.p >= 0.9
    # Boxes come back in the portrait frame's pixels (720 wide, 1280 high).
    for _conf, (xc, yc, w, h) in tangle.detections:
        assert 0 <= xc <= 720 and 0 <= yc <= 1280 and w <= 720 and h <= 1280
