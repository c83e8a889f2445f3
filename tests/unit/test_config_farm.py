"""Config: the new backends' options, the decision policy, and [printer NAME] sections."""

from __future__ import annotations

import os

import pytest

from failwatch_moonraker.config import Config, ConfigError, parse_config

P = "/home/pi/printer_data/config/failwatch.cfg"
MINIMAL = "[predictor]\nserial_no: SN-1\naccess_token: tok-123\n"
HOME = os.path.expanduser("~")


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, P)
    return list(info.value.problems)


def one_error(text: str) -> str:
    problems = errors_of(text)
    assert len(problems) == 1, problems
    return problems[0]


# -- defaults ------------------------------------------------------------------------


def test_new_defaults() -> None:
    cfg = parse_config(MINIMAL, P)
    d, p = cfg.detection, cfg.predictor
    assert (d.policy, d.buffer_confidence, d.buffer_length, d.buffer_percent,
            d.buffer_warning_percent) == ("obico", 0.6, 16, 60.0, 30.0)
    assert (p.api_key, p.printer_id, p.bending_factor, p.image_source, p.image_bind,
            p.image_port, p.image_url) == ("", "", 1.0, "serve", "0.0.0.0", 7135, "")
    assert cfg.name == "" and cfg.printers == ()


def test_backend_default_urls() -> None:
    pw = parse_config("[predictor]\nbackend: printwatch\napi_key: sub_k\n", P).predictor
    assert pw.url == "https://octoprint.printpal.io/api/v2/infer"
    ml = parse_config("[predictor]\nbackend: obico_ml_api\nurl: http://gpu.local:3333\n", P)
    assert ml.predictor.url == "http://gpu.local:3333" and ml.predictor.access_token == ""


def test_warning_share_defaults_to_half_the_failure_share() -> None:
    d = parse_config(MINIMAL + "[detection]\npolicy: buffer\nbuffer_percent: 20\n", P).detection
    assert (d.policy, d.buffer_percent, d.buffer_warning_percent) == ("buffer", 20.0, 10.0)
    d = parse_config(MINIMAL + "[detection]\nbuffer_percent: 60\nbuffer_warning_percent: 60\n",
                     P).detection
    assert d.buffer_warning_percent == 60.0


def test_api_key_is_a_secret() -> None:
    cfg = parse_config("[predictor]\nbackend: printwatch\napi_key: sub_very-secret\n", P)
    assert cfg.secrets() == ("sub_very-secret",)
    assert "sub_very-secret" not in repr(cfg)
    problems = errors_of("[predictor]\nbackend: printwatch\napi_key: sub_very secret\n"
                         "[camera]\nbogus: sub_very secret\n")
    assert not any("sub_very" in m for m in problems), problems


# -- exact messages ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL + "[detection]\npolicy: majority",
         "[detection] policy: must be one of: obico, buffer; got 'majority'"),
        (MINIMAL + "[detection]\nbuffer_length: 0",
         "[detection] buffer_length: must be an integer >= 1, got '0'"),
        (MINIMAL + "[detection]\nbuffer_length: 1001",
         "[detection] buffer_length: must be an integer <= 1000, got '1001'"),
        (MINIMAL + "[detection]\nbuffer_percent: 0",
         "[detection] buffer_percent: must be a number > 0, got '0'"),
        (MINIMAL + "[detection]\nbuffer_percent: 101",
         "[detection] buffer_percent: must be a number <= 100, got '101'"),
        (MINIMAL + "[detection]\nbuffer_confidence: 0",
         "[detection] buffer_confidence: must be a number > 0, got '0'"),
        (MINIMAL + "[detection]\nbuffer_percent: 50\nbuffer_warning_percent: 70",
         "[detection] buffer_warning_percent: must be <= buffer_percent (50), got '70'"),
        (MINIMAL + "[detection]\nbuffer_warning_percent: 0",
         "[detection] buffer_warning_percent: must be a number > 0, got '0'"),
        ("[predictor]\nbackend: printwatch",
         "[predictor] api_key: required for backend 'printwatch'"),
        ("[predictor]\nbackend: obico_ml_api",
         "[predictor] url: required for backend 'obico_ml_api'"),
        ("[predictor]\nbackend: obico_ml_api\nurl: ml.local:3333",
         "[predictor] url: must be an http:// or https:// URL, got 'ml.local:3333'"),
        ("[predictor]\nbackend: obico_ml_api\nurl: http://ml:3333\nimage_bind: my host",
         "[predictor] image_bind: must be an IP address of this machine to listen on "
         "(0.0.0.0 = every interface), got 'my host'"),
        ("[predictor]\nbackend: obico_ml_api\nurl: http://ml:3333\nimage_port: 70000",
         "[predictor] image_port: must be an integer <= 65535, got '70000'"),
        ("[predictor]\nbackend: obico_ml_api\nurl: http://ml:3333\nimage_url: pi.local:7135",
         "[predictor] image_url: must be an http:// or https:// URL, got 'pi.local:7135'"),
        ("[predictor]\nbackend: obico_ml_api\nurl: http://ml:3333\nimage_source: upload",
         "[predictor] image_source: must be one of: serve, camera; got 'upload'"),
        ("[predictor]\nbackend: obico_ml_api\nurl: http://ml:3333\nbending_factor: 0",
         "[predictor] bending_factor: must be a number > 0, got '0'"),
        ("[predictor]\nbackend: obico_ml_api\nurl: http://ml:3333\nbending_factor: 11",
         "[predictor] bending_factor: must be a number <= 10, got '11'"),
        ("[predictor]\nbackend: printwatch\napi_key: sub_abc\nprinter_id: my printer",
         "[predictor] printer_id: must not contain spaces, got 'my printer'"),
        ("[predictor]\nbackend: printwatch\napi_key: sub_abc def",
         "[predictor] api_key: must not contain spaces or line breaks (value not shown)"),
    ],
)
def test_messages(text: str, message: str) -> None:
    assert one_error(text + "\n") == f"{P}: {message}"


def test_ml_api_bind_accepts_addresses() -> None:
    for bind in ("0.0.0.0", "127.0.0.1", "192.168.1.20", "::", "localhost"):
        text = f"[predictor]\nbackend: obico_ml_api\nurl: http://ml:3333\nimage_bind: {bind}\n"
        assert parse_config(text, P).predictor.image_bind == bind


# -- farm mode -----------------------------------------------------------------------

FARM = """\
[predictor]
serial_no: SN-DEFAULT
access_token: tok-default
[detection]
interval: 5
[state]
path: /var/lib/failwatch/state.json
[printer voron]
moonraker_url: http://voron.local:7125
camera_snapshot_url: http://voron.local/webcam/?action=snapshot
predictor_access_token: tok-voron
detection_sensitivity: 1.5
[printer prusa-mk4]
moonraker_url: ws://10.0.0.9:7126/websocket
moonraker_api_key: key-prusa-123
predictor_backend: printwatch
predictor_api_key: sub_prusa-key
detection_policy: buffer
actions_on_failure: cancel, notify
state_path: /srv/prusa.json
"""


def test_printer_sections_inherit_and_override() -> None:
    cfg = parse_config(FARM, P)
    assert [p.name for p in cfg.printers] == ["voron", "prusa-mk4"]
    voron, prusa = cfg.printers
    assert voron.moonraker.url == "ws://voron.local:7125/websocket"
    assert voron.camera.snapshot_url == "http://voron.local/webcam/?action=snapshot"
    assert voron.predictor.serial_no == "SN-DEFAULT"  # inherited
    assert voron.predictor.access_token == "tok-voron"  # overridden
    assert voron.detection.sensitivity == 1.5 and voron.detection.interval == 5.0
    assert voron.state.path == "/var/lib/failwatch/state-voron.json"
    assert voron.actions == cfg.actions and voron.logging == cfg.logging
    assert prusa.moonraker.api_key == "key-prusa-123"
    assert prusa.predictor.backend == "printwatch" and prusa.predictor.api_key == "sub_prusa-key"
    assert prusa.predictor.url == "https://octoprint.printpal.io/api/v2/infer"
    assert prusa.detection.policy == "buffer" and prusa.detection.interval == 5.0
    assert prusa.actions.on_failure == ("cancel", "notify")
    assert prusa.state.path == "/srv/prusa.json"
    for printer in cfg.printers:
        assert printer.printers == ()
        assert printer.notify.printer_name == printer.name
        # job ids are counted per Moonraker: recordings must not share a folder
        assert printer.record.path == os.path.join(cfg.record.path, printer.name)
    assert set(cfg.secrets()) == {"tok-default", "tok-voron", "key-prusa-123", "sub_prusa-key"}
    assert "tok-voron" not in repr(cfg) and "sub_prusa-key" not in repr(cfg)


def test_default_state_path_gets_the_printer_name() -> None:
    cfg = parse_config(MINIMAL + "[printer a]\nmoonraker_url: ws://a\n", P)
    assert cfg.printers[0].state.path == f"{HOME}/printer_data/failwatch/state-a.json"


def test_notify_printer_name_is_kept_when_set() -> None:
    cfg = parse_config(MINIMAL + "[notify]\nprinter_name: Farm\n[printer a]\n"
                       "moonraker_url: ws://a\n", P)
    assert cfg.printers[0].notify.printer_name == "Farm"


def test_farm_top_level_needs_no_credentials() -> None:
    text = ("[printer a]\nmoonraker_url: ws://a\npredictor_serial_no: S\n"
            "predictor_access_token: T\n")
    assert isinstance(parse_config(text, P), Config)


def test_farm_errors() -> None:
    text = """\
[camera]
timeout: fast
[printer a]
moonraker_url: ws://a:7125
camera_timeout: 0
snapshot_url: http://x/
logging_level: DEBUG
moonraker_host: a.local
colour: red
[printer b]
moonraker_url: ws://a:7125
predictor_backend: printwatch
detection_buffer_warning_percent: 70
[printer c d]
[printer]
[printer B]
moonraker_url: ws://b
"""
    assert errors_of(text) == [
        f"{P}: [printer a] camera_timeout: must be a number >= 0.5, got '0'",
        f"{P}: [printer a] predictor_serial_no: required for backend 'obico'",
        f"{P}: [printer a] predictor_access_token: required for backend 'obico'",
        f"{P}: [printer a] snapshot_url: unknown option; did you mean 'camera_snapshot_url'?",
        f"{P}: [printer a] logging_level: unknown option; [logging] applies to every printer "
        "and cannot be set in a printer section",
        f"{P}: [printer a] moonraker_host: unknown option; did you mean 'moonraker_url'?",
        f"{P}: [printer a] colour: unknown option; a printer section takes the options of "
        "[moonraker], [camera], [predictor], [detection], [actions], [state] with the section "
        "name in front, e.g. moonraker_url, camera_snapshot_url, predictor_access_token",
        f"{P}: [camera] timeout: must be a number >= 0.5 and <= 120, got 'fast'",
        f"{P}: [printer b] predictor_api_key: required for backend 'printwatch'",
        f"{P}: [printer b] detection_buffer_warning_percent: must be <= buffer_percent (60), "
        "got '70'",
        f"{P}: [printer b] moonraker_url: ws://a:7125/websocket is already watched by "
        "[printer a]; each printer needs its own Moonraker",
        f"{P}: [printer c d]: the printer name must be one word of letters, digits, '-', '_' "
        "or '.' (at most 64 characters), e.g. [printer voron_2.4]",
        f"{P}: [printer]: a printer section needs a name, e.g. [printer voron]",
        f"{P}: [printer B]: the name 'B' is already used by [printer b]",
    ]


def test_inherited_problem_is_reported_once() -> None:
    text = MINIMAL + "[actions]\non_failure: pause, cancel\n" + "".join(
        f"[printer p{i}]\nmoonraker_url: ws://p{i}\n" for i in range(3))
    assert errors_of(text) == [
        f"{P}: [actions] on_failure: 'pause' and 'cancel' cannot be used together"]


def test_same_state_file_twice() -> None:
    text = MINIMAL + ("[printer a]\nmoonraker_url: ws://a\nstate_path: /tmp/s.json\n"
                      "[printer b]\nmoonraker_url: ws://b\nstate_path: /tmp/s.json\n")
    assert errors_of(text) == [
        f"{P}: [printer b] state_path: /tmp/s.json is already the state file of [printer a]; "
        "each printer needs its own"]


def test_printer_secrets_never_in_errors() -> None:
    text = ("[printer a]\nmoonraker_url: ws://a\npredictor_backend: printwatch\n"
            "predictor_api_key: sub_hidden key\nmoonraker_api_key: hidden-moon key\n")
    problems = errors_of(text)
    assert problems == [
        f"{P}: [printer a] moonraker_api_key: must not contain spaces or line breaks "
        "(value not shown)",
        f"{P}: [printer a] predictor_api_key: must not contain spaces or line breaks "
        "(value not shown)",
    ]


def test_the_examples_farm_sections_parse() -> None:
    """The commented [printer ...] example, uncommented as the file says, is valid."""
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "config" / "failwatch.cfg.example"
    text = example.read_text(encoding="utf-8")
    block = text.split('remove the leading "# " of each line')[1].split("\n", 1)[1]
    lines = [line[2:] if line.startswith("# ") else "" for line in block.splitlines()]
    cfg = parse_config(text + "\n" + "\n".join(lines), P)
    assert [(p.name, p.predictor.backend, p.detection.policy) for p in cfg.printers] == [
        ("voron", "obico", "obico"), ("prusa", "printwatch", "buffer")]
