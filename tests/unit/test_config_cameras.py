"""[camera NAME] sections and [camera] webcams: what a printer with several cameras writes."""

from __future__ import annotations

import pytest

from failwatch_moonraker.cameras import cameras_of
from failwatch_moonraker.config import ConfigError, parse_config

P = "/home/pi/printer_data/config/failwatch.cfg"
MINIMAL = "[predictor]\nserial_no: SN-1\naccess_token: tok-123\n\n"


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL + text, P)
    return str(info.value).split("\n")


def test_camera_alone_is_one_unnamed_camera() -> None:
    config = parse_config(MINIMAL + "[camera]\nwebcam: front\n", P)
    assert config.cameras == ()
    assert [c.name for c in cameras_of(config)] == [""]


def test_named_sections_inherit_only_the_shared_defaults() -> None:
    config = parse_config(MINIMAL + (
        "[camera]\ntimeout: 3\n\n"
        "[camera nozzle]\nsnapshot_url: http://127.0.0.1:8081/?action=snapshot\n"
        "rotation: 90\n\n"
        "[camera bed]\n"), P)
    nozzle, bed = cameras_of(config)
    assert (nozzle.name, nozzle.rotation, nozzle.timeout) == ("nozzle", 90, 3.0)
    # no URL and no webcam: Moonraker's webcam of the same name
    assert (bed.name, bed.webcam, bed.snapshot_url, bed.rotation, bed.timeout) == \
        ("bed", "bed", "", None, 3.0)


def test_webcams_names_moonraker_webcams_as_cameras() -> None:
    config = parse_config(MINIMAL + "[camera]\nwebcams: nozzle, bed\nmax_size: 2\n", P)
    assert [(c.name, c.webcam, c.max_size) for c in cameras_of(config)] == \
        [("nozzle", "nozzle", 2 * 1024 * 1024), ("bed", "bed", 2 * 1024 * 1024)]


@pytest.mark.parametrize(("text", "message"), [
    ("[camera]\nwebcams: a, b\nsnapshot_url: /webcam/?action=snapshot\n",
     "[camera] webcams: cannot be used together with snapshot_url in [camera]: either name "
     "the Moonraker webcams to watch here, or give one camera's snapshot_url"),
    ("[camera]\nwebcams: a, a\n", "[camera] webcams: webcam 'a' is listed more than once"),
    ("[camera]\nwebcams: my cam\n",
     "[camera] webcams: the webcam name 'my cam' cannot name a camera: it must be one word "
     "of letters, digits, '-', '_' or '.' (at most 64 characters)"),
    ("[camera a b]\n",
     "[camera a b]: the camera name must be one word of letters, digits, '-', '_' or '.' "
     "(at most 64 characters), e.g. [camera nozzle]"),
    ("[camera]\nwebcams: bed\n\n[camera Bed]\n",
     "[camera Bed]: the name 'Bed' is already used by [camera] webcams"),
    ("[camera x]\nwebcams: y\n",
     "[camera x] webcams: unknown option; webcams belongs in [camera] (it names several "
     "cameras at once)"),
    ("[camera x]\nsnapshot: /a\n", "[camera x] snapshot: unknown option; did you mean "
     "'snapshot_url'?"),
    ("[camera x]\ntimeout: 0\n", "[camera x] timeout: must be a number >= 0.5, got '0'"),
    ("[camera]\nsnapshot_url: /webcam/?action=snapshot\n\n[camera x]\n",
     "[camera] snapshot_url: not used when [camera NAME] sections name the cameras: move it "
     "into the section of the camera it belongs to"),
    ("[printer voron]\nmoonraker_url: ws://127.0.0.1:7125/websocket\n\n[camera x]\n",
     "[camera x]: in a farm, a printer's cameras are named with camera_webcams in its "
     "[printer NAME] section"),
])
def test_camera_section_mistakes_are_named(text: str, message: str) -> None:
    assert f"{P}: {message}" in errors_of(text)


def test_an_inherited_bad_value_is_reported_once_against_camera() -> None:
    errors = errors_of("[camera]\ntimeout: 0\n\n[camera a]\n\n[camera b]\n")
    assert errors == [f"{P}: [camera] timeout: must be a number >= 0.5, got '0'"]


def test_a_farm_printer_names_its_cameras_with_camera_webcams() -> None:
    config = parse_config(MINIMAL + "[printer voron]\nmoonraker_url: ws://127.0.0.1:7125/"
                          "websocket\ncamera_webcams: nozzle, bed\n", P)
    (voron,) = config.printers
    assert [c.name for c in cameras_of(voron)] == ["nozzle", "bed"]
