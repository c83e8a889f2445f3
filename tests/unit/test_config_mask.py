"""[camera] mask in failwatch.cfg: values, exact errors, and the ML server's own fetch."""

from __future__ import annotations

import pytest

from failwatch_moonraker.camera.mask import Rect
from failwatch_moonraker.config import ConfigError, parse_config

P = "/home/pi/printer_data/config/failwatch.cfg"
MINIMAL = "[predictor]\nserial_no: SN-1\naccess_token: tok-123\n"
ML_API = "[predictor]\nbackend: obico_ml_api\nurl: http://10.0.0.2:3333\n"


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, P)
    assert len(info.value.problems) == 1, info.value.problems
    return str(info.value)


def test_no_mask_by_default() -> None:
    assert parse_config(MINIMAL).camera.mask == ()


def test_mask_on_one_line_or_several() -> None:
    one = parse_config(MINIMAL + "[camera]\nmask: 0,0,0.25,0.15;0.8,0.7,1,1\n")
    several = parse_config(MINIMAL + "[camera]\nmask:\n  0,0,0.25,0.15\n  0.8,0.7,1,1\n")
    assert one.camera.mask == several.camera.mask == (Rect(0, 0, 0.25, 0.15),
                                                     Rect(0.8, 0.7, 1, 1))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0,0,1.5,1", "rectangle 1 '0,0,1.5,1': x2 is 1.5, must be from 0 to 1 (a fraction "
                      "of the frame's width)"),
        ("0.5,0,0.2,1", "rectangle 1 '0.5,0,0.2,1': x2 (0.2) must be greater than x1 (0.5); "
                        "give the top-left corner first, then the bottom-right one"),
        ("0,0,0.2", "rectangle 1 '0,0,0.2' is not 4 numbers; write one or more rectangles "
                    "x1,y1,x2,y2 (left, top, right, bottom, as fractions from 0 to 1 of the "
                    "frame's width and height), separated by ';'"),
        ("0,0,1,0.5;0,0.5,1,1", "the rectangles cover the whole frame, so nothing would be "
                                "watched; mask only the parts to ignore"),
    ],
)
def test_bad_masks_name_file_section_option(value: str, message: str) -> None:
    assert error_of(MINIMAL + f"[camera]\nmask: {value}\n") == f"{P}: [camera] mask: {message}"


def test_the_ml_server_fetching_the_camera_itself_cannot_be_masked() -> None:
    text = ML_API + "image_source: camera\n[camera]\nmask: 0,0,0.2,0.2\n"
    assert error_of(text) == (
        f"{P}: [predictor] image_source: 'camera' cannot be used with [camera] mask: the ML "
        "server would fetch the camera's own snapshots, which failwatch cannot mask; set "
        "image_source: serve (failwatch then serves each masked frame) or remove the mask")
    served = parse_config(ML_API + "image_source: serve\n[camera]\nmask: 0,0,0.2,0.2\n")
    assert served.camera.mask == (Rect(0, 0, 0.2, 0.2),)
    assert parse_config(ML_API + "image_source: camera\n").predictor.image_source == "camera"


def test_in_a_farm_the_printer_with_the_conflict_is_named() -> None:
    text = (ML_API + "image_source: camera\n"
            "[printer voron]\nmoonraker_url: ws://voron.local:7125/websocket\n"
            "camera_mask: 0,0,0.2,0.2\n"
            "[printer ender]\nmoonraker_url: ws://ender.local:7125/websocket\n")
    assert error_of(text) == (
        f"{P}: [printer voron] predictor_image_source: 'camera' cannot be used with "
        "camera_mask: the ML server would fetch the camera's own snapshots, which failwatch "
        "cannot mask; set image_source: serve (failwatch then serves each masked frame) or "
        "remove the mask")
    ok = parse_config(text.replace("image_source: camera", "image_source: serve"))
    assert [p.camera.mask for p in ok.printers] == [(Rect(0, 0, 0.2, 0.2),), ()]


def test_a_bad_mask_in_a_printer_section_names_it() -> None:
    text = (MINIMAL + "[printer voron]\nmoonraker_url: ws://voron.local:7125/websocket\n"
            "camera_mask: 0,0,2,1\n")
    assert error_of(text) == (
        f"{P}: [printer voron] camera_mask: rectangle 1 '0,0,2,1': x2 is 2, must be from 0 "
        "to 1 (a fraction of the frame's width)")


def test_named_cameras_have_masks_of_their_own() -> None:
    text = (MINIMAL + "[camera nozzle]\nsnapshot_url: http://cam/1\nmask: 0,0,0.2,0.2\n"
            "[camera bed]\nwebcam: bed-cam\n")
    assert [(c.name, c.mask) for c in parse_config(text).cameras] == [
        ("nozzle", (Rect(0, 0, 0.2, 0.2),)), ("bed", ())]
    assert error_of(text.replace("0,0,0.2,0.2", "0,0,0.2")).startswith(
        f"{P}: [camera nozzle] mask: rectangle 1 '0,0,0.2' is not 4 numbers; ")
    ml = ML_API + "image_source: camera\n" + text.replace(MINIMAL, "")
    assert error_of(ml).startswith(
        f"{P}: [predictor] image_source: 'camera' cannot be used with [camera nozzle] mask: ")


def test_a_mask_is_not_shared_by_the_webcams_of_one_line() -> None:
    assert error_of(MINIMAL + "[camera]\nwebcams: nozzle, bed\nmask: 0,0,0.2,0.2\n") == (
        f"{P}: [camera] mask: not used with webcams (each camera's view is its own): name the "
        "cameras with [camera NAME] sections instead, each with its own mask")
    assert [c.mask for c in parse_config(MINIMAL + "[camera]\nwebcams: a, b\n").cameras] == \
        [(), ()]
