"""Tests for failwatch_moonraker.config."""

from __future__ import annotations

import os
import re
import socket
import traceback
from pathlib import Path

import pytest

from failwatch_moonraker import cfgfile
from failwatch_moonraker import config as cfgmod
from failwatch_moonraker.config import (
    ACTIONS,
    DEFAULT_CONFIG_PATH,
    OBICO_DEFAULT_URL,
    ActionsConfig,
    CameraConfig,
    Config,
    ConfigError,
    DetectionConfig,
    LoggingConfig,
    MoonrakerConfig,
    NotifyConfig,
    PredictorConfig,
    SnapshotsConfig,
    StateConfig,
    known_options,
    load_config,
    parse_config,
)

P = "/home/pi/printer_data/config/failwatch.cfg"
EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "failwatch.cfg.example"
MIB = 1024 * 1024

MINIMAL = """\
[predictor]
serial_no: SN-1
access_token: tok-123
"""


def errors_of(text: str, path: str = P) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, path)
    problems = str(info.value).split("\n")
    assert list(info.value.problems) == problems
    return problems


def one_error(text: str, path: str = P) -> str:
    problems = errors_of(text, path)
    assert len(problems) == 1, problems
    return problems[0]


def with_minimal(extra: str) -> str:
    return MINIMAL + "\n" + extra


# ---------------------------------------------------------------------------
# Good files
# ---------------------------------------------------------------------------


def test_constants() -> None:
    assert DEFAULT_CONFIG_PATH == "~/printer_data/config/failwatch.cfg"
    assert OBICO_DEFAULT_URL == "https://elegoo-app.obico.io/ent/partners/api/elegoo/predict/"
    assert ACTIONS == (
        "pause",
        "cancel",
        "heaters_off",
        "extruder_off",
        "bed_off",
        "notify",
        "gcode",
    )


def test_minimal_file_gives_all_defaults() -> None:
    home = os.path.expanduser("~")
    cfg = parse_config(MINIMAL)
    assert cfg == Config(
        path="<string>",
        moonraker=MoonrakerConfig(
            url="ws://127.0.0.1:7125/websocket",
            api_key="",
            unix_socket=f"{home}/printer_data/comms/moonraker.sock",
        ),
        camera=CameraConfig(
            snapshot_url="",
            webcam="",
            timeout=5.0,
            max_size=8 * MIB,
            flip_horizontal=None,
            flip_vertical=None,
            rotation=None,
        ),
        predictor=PredictorConfig(
            backend="obico",
            url=OBICO_DEFAULT_URL,
            serial_no="SN-1",
            access_token="tok-123",
            timeout=30.0,
        ),
        detection=DetectionConfig(
            interval=10.0,
            sensitivity=1.0,
            ewm_span=12,
            short_window=310,
            long_window=7200,
            threshold_low=0.38,
            threshold_high=0.78,
            short_multiple=3.8,
            escalating_factor=1.75,
            safe_frames=30,
            resume_cooldown=90.0,
            warning_cooldown=300.0,
        ),
        actions=ActionsConfig(
            on_warning=("notify",),
            on_failure=("pause", "notify"),
            failure_gcode="",
            heaters_off_delay=0.0,
        ),
        state=StateConfig(path=f"{home}/printer_data/failwatch/state.json"),
        logging=LoggingConfig(
            path=f"{home}/printer_data/logs/failwatch.log",
            level="INFO",
            max_size=5 * MIB,
            backups=3,
        ),
        snapshots=SnapshotsConfig(
            enabled=True,
            path=f"{home}/printer_data/logs/failwatch_snapshots",
            max_count=100,
            max_size=200 * MIB,
            public_url="",
        ),
        notify=NotifyConfig(
            webhook_urls=(),
            apprise_urls=(),
            timeout=10.0,
            include_image=True,
            printer_name=socket.gethostname(),
        ),
    )
    assert isinstance(cfg.detection.interval, float)
    assert isinstance(cfg.detection.resume_cooldown, float)


def test_empty_sections_give_defaults() -> None:
    text = MINIMAL + "".join(
        f"[{name}]\n"
        for name in ("moonraker", "camera", "detection", "actions", "state", "logging")
    )
    assert parse_config(text) == parse_config(MINIMAL)


FULL = """\
[moonraker]
url: wss://printer.local:7130/websocket
api_key: 0123456789abcdef0123456789abcdef
unix_socket: /run/moonraker.sock

[camera]
snapshot_url: /webcam/?action=snapshot
webcam: nozzle cam
timeout: 2.5
max_size: 1.5
flip_horizontal: true
flip_vertical: no
rotation: 270

[predictor]
backend: OBICO
url: http://10.0.0.2:3333/p/
serial_no: ABC-42
access_token: s3cr3t-token-value
timeout: 12

[detection]
interval: 5
sensitivity: 1.2
ewm_span: 8
short_window: 100
long_window: 1000
threshold_low: 0.3
threshold_high: 0.3
short_multiple: 4
escalating_factor: 1
safe_frames: 0
resume_cooldown: 0
warning_cooldown: 60.5

[actions]
on_warning:
on_failure: Cancel, heaters_off, notify, gcode
failure_gcode: M117 Print failed
heaters_off_delay: 120

[state]
path: /var/lib/failwatch/state.json

[logging]
path:
level: debug
max_size: 0.5
backups: 0
"""


def test_every_option_set() -> None:
    cfg = parse_config(FULL, P)
    assert cfg.path == P
    assert cfg.moonraker == MoonrakerConfig(
        url="wss://printer.local:7130/websocket",
        api_key="0123456789abcdef0123456789abcdef",
        unix_socket="/run/moonraker.sock",
    )
    assert cfg.camera == CameraConfig(
        snapshot_url="/webcam/?action=snapshot",
        webcam="nozzle cam",
        timeout=2.5,
        max_size=round(1.5 * MIB),
        flip_horizontal=True,
        flip_vertical=False,
        rotation=270,
    )
    assert cfg.predictor == PredictorConfig(
        backend="obico",
        url="http://10.0.0.2:3333/p/",
        serial_no="ABC-42",
        access_token="s3cr3t-token-value",
        timeout=12.0,
    )
    assert cfg.detection == DetectionConfig(
        interval=5.0,
        sensitivity=1.2,
        ewm_span=8,
        short_window=100,
        long_window=1000,
        threshold_low=0.3,
        threshold_high=0.3,
        short_multiple=4.0,
        escalating_factor=1.0,
        safe_frames=0,
        resume_cooldown=0.0,
        warning_cooldown=60.5,
    )
    assert cfg.actions == ActionsConfig(
        on_warning=(),
        on_failure=("cancel", "heaters_off", "notify", "gcode"),
        failure_gcode="M117 Print failed",
        heaters_off_delay=120.0,
    )
    assert cfg.state == StateConfig(path="/var/lib/failwatch/state.json")
    assert cfg.logging == LoggingConfig(path="", level="DEBUG", max_size=MIB // 2, backups=0)
    assert cfg.secrets() == ("0123456789abcdef0123456789abcdef", "s3cr3t-token-value")


def test_secrets_skips_empty_values() -> None:
    assert parse_config(MINIMAL).secrets() == ("tok-123",)


def test_repr_hides_secrets() -> None:
    cfg = parse_config(FULL)
    assert "s3cr3t-token-value" not in repr(cfg)
    assert "0123456789abcdef0123456789abcdef" not in repr(cfg)


def test_equals_sign_delimiter_and_comments() -> None:
    cfg = parse_config(
        """\
# full-line comment
; another one
[predictor]
serial_no = SN-9   ; inline comment
access_token = tok-123 # inline comment
  # indented comment
[camera]
snapshot_url: http://cam.local/snap#frag  # the fragment stays
webcam: cam\\#2 # escaped hash
"""
    )
    assert cfg.predictor.serial_no == "SN-9"
    assert cfg.predictor.access_token == "tok-123"
    assert cfg.camera.snapshot_url == "http://cam.local/snap#frag"
    assert cfg.camera.webcam == "cam#2"


def test_url_fragment_without_space_is_kept() -> None:
    cfg = parse_config(with_minimal("[camera]\nsnapshot_url: http://x/#frag\n"))
    assert cfg.camera.snapshot_url == "http://x/#frag"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("yes", True),
        ("Yes", True),
        ("TRUE", True),
        ("on", True),
        ("1", True),
        ("no", False),
        ("False", False),
        ("OFF", False),
        ("0", False),
        ("", None),
    ],
)
def test_boolean_spellings(raw: str, expected: bool | None) -> None:
    cfg = parse_config(with_minimal(f"[camera]\nflip_horizontal: {raw}\nflip_vertical: {raw}\n"))
    assert cfg.camera.flip_horizontal is expected
    assert cfg.camera.flip_vertical is expected


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_rotations(rotation: int) -> None:
    cfg = parse_config(with_minimal(f"[camera]\nrotation: {rotation}\n"))
    assert cfg.camera.rotation == rotation


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ws://127.0.0.1:7125/websocket", "ws://127.0.0.1:7125/websocket"),
        ("wss://host/websocket", "wss://host/websocket"),
        ("http://192.168.1.5:7125", "ws://192.168.1.5:7125/websocket"),
        ("http://192.168.1.5:7125/", "ws://192.168.1.5:7125/websocket"),
        ("https://printer.example.com", "wss://printer.example.com/websocket"),
        (
            "HTTPS://printer.example.com/moonraker/websocket",
            "wss://printer.example.com/moonraker/websocket",
        ),
        ("ws://localhost:7125", "ws://localhost:7125/websocket"),
        ("http://host:7125/websocket?token=abc", "ws://host:7125/websocket?token=abc"),
    ],
)
def test_moonraker_url_conversion(raw: str, expected: str) -> None:
    cfg = parse_config(with_minimal(f"[moonraker]\nurl: {raw}\n"))
    assert cfg.moonraker.url == expected


def test_log_level_is_case_insensitive() -> None:
    cfg = parse_config(with_minimal("[logging]\nlevel: Warning\n"))
    assert cfg.logging.level == "WARNING"


def test_actions_lists() -> None:
    cfg = parse_config(
        with_minimal(
            "[actions]\non_warning: notify,\non_failure:\n  pause\n  bed_off, extruder_off\n"
        )
    )
    assert cfg.actions.on_warning == ("notify",)
    assert cfg.actions.on_failure == ("pause", "bed_off", "extruder_off")


def test_multiline_failure_gcode() -> None:
    cfg = parse_config(
        with_minimal("[actions]\non_failure: gcode\nfailure_gcode:\n  M117 failed\n  M300 S440\n")
    )
    assert cfg.actions.failure_gcode == "M117 failed\nM300 S440"


def test_paths_are_expanded_and_resolved_against_the_config_folder() -> None:
    home = os.path.expanduser("~")
    cfg = parse_config(
        with_minimal(
            "[state]\npath: state/fw.json\n[logging]\npath: ~/logs/fw.log\n"
            "[moonraker]\nunix_socket: ~/comms/m.sock\n"
        ),
        P,
    )
    assert cfg.state.path == "/home/pi/printer_data/config/state/fw.json"
    assert cfg.logging.path == f"{home}/logs/fw.log"
    assert cfg.moonraker.unix_socket == f"{home}/comms/m.sock"


def test_empty_unix_socket_disables_it() -> None:
    assert parse_config(with_minimal("[moonraker]\nunix_socket:\n")).moonraker.unix_socket == ""


def test_load_config(tmp_path: Path) -> None:
    path = tmp_path / "failwatch.cfg"
    path.write_text("\ufeff" + MINIMAL, encoding="utf-8")  # a BOM is tolerated
    cfg = load_config(path)
    assert cfg.path == str(path)
    assert cfg.predictor.serial_no == "SN-1"
    assert load_config(str(path)) == cfg


def test_load_config_expands_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "fw.cfg").write_text(MINIMAL, encoding="utf-8")
    assert load_config("~/fw.cfg").path == str(tmp_path / "fw.cfg")


# ---------------------------------------------------------------------------
# The example file
# ---------------------------------------------------------------------------


def test_example_parses() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.predictor.serial_no and cfg.predictor.access_token
    assert "snapshot" in EXAMPLE.read_text().lower() and "privacy" in EXAMPLE.read_text().lower()


def test_example_documents_the_true_defaults() -> None:
    """Uncommenting every '#option: value' line of the example changes nothing."""
    text = EXAMPLE.read_text(encoding="utf-8")
    uncommented = re.sub(r"(?m)^#([a-z_]+\s*[:=])", r"\1", text)
    assert uncommented != text
    as_is = parse_config(text, P)
    activated = parse_config(uncommented, P)
    assert activated == as_is
    defaults = parse_config(MINIMAL, P)
    for name in ("moonraker", "camera", "detection", "actions", "state", "logging"):
        assert getattr(activated, name) == getattr(defaults, name), name


def _example_options() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    section = None
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        header = re.match(r"\[([^\]]+)\]", line)
        if header:
            section = header.group(1)
            found.setdefault(section, [])
            continue
        option = re.match(r"#?([a-z_][a-z0-9_]*)\s*[:=]", line)
        if option:
            assert section is not None, line
            found[section].append(option.group(1))
    return found


def test_example_and_loader_know_the_same_options() -> None:
    loader = known_options()
    example = _example_options()
    assert set(example) == set(loader)
    for section, options in loader.items():
        assert sorted(example[section]) == sorted(options), section
        assert len(set(example[section])) == len(example[section]), section


def test_known_options_come_from_the_getters(monkeypatch: pytest.MonkeyPatch) -> None:
    # Independent cross-check of known_options(): record every getter call made while
    # loading a complete config.
    calls: set[tuple[str, str]] = set()
    for getter in ("get", "getint", "getfloat", "getboolean", "getchoice", "getlist"):
        original = getattr(cfgfile.Section, getter)

        def spy(self, option, *args, __original=original, **kwargs):  # type: ignore[no-untyped-def]
            calls.add((self.name, option))
            return __original(self, option, *args, **kwargs)

        monkeypatch.setattr(cfgfile.Section, getter, spy)
    parse_config(FULL)
    assert calls == {(s, o) for s, options in known_options().items() for o in options}


# ---------------------------------------------------------------------------
# Bad files: exact messages
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "[detection]\ninterval: 0.05",
            "[detection] interval: must be a number >= 0.1, got '0.05'",
        ),
        (
            "[detection]\ninterval: 4000",
            "[detection] interval: must be a number <= 3600, got '4000'",
        ),
        (
            "[detection]\ninterval: soon",
            "[detection] interval: must be a number >= 0.1 and <= 3600, got 'soon'",
        ),
        (
            "[detection]\ninterval: nan",
            "[detection] interval: must be a number >= 0.1 and <= 3600, got 'nan'",
        ),
        (
            "[detection]\nsensitivity: 6",
            "[detection] sensitivity: must be a number <= 5, got '6'",
        ),
        (
            "[detection]\newm_span: 0",
            "[detection] ewm_span: must be an integer >= 1, got '0'",
        ),
        (
            "[detection]\nshort_window: 3.5",
            "[detection] short_window: must be an integer >= 1, got '3.5'",
        ),
        (
            "[detection]\nsafe_frames: -1",
            "[detection] safe_frames: must be an integer >= 0, got '-1'",
        ),
        (
            "[detection]\nescalating_factor: 0.5",
            "[detection] escalating_factor: must be a number >= 1, got '0.5'",
        ),
        (
            "[detection]\nthreshold_low: 0.5\nthreshold_high: 0.4",
            "[detection] threshold_high: must be >= threshold_low (0.5), got '0.4'",
        ),
        (
            "[camera]\ntimeout: 0.1",
            "[camera] timeout: must be a number >= 0.5, got '0.1'",
        ),
        (
            "[camera]\nmax_size: 200",
            "[camera] max_size: must be a number <= 100, got '200'",
        ),
        (
            "[camera]\nflip_vertical: maybe",
            "[camera] flip_vertical: must be a boolean (true/false, yes/no, on/off, 1/0), "
            "got 'maybe'",
        ),
        (
            "[camera]\nrotation: 45",
            "[camera] rotation: must be one of: 0, 90, 180, 270; got '45'",
        ),
        (
            "[camera]\nsnapshot_url: ftp://cam/snap.jpg",
            "[camera] snapshot_url: must be an http:// or https:// URL, or a path on "
            "Moonraker's host starting with '/', got 'ftp://cam/snap.jpg'",
        ),
        (
            "[camera]\nsnapshot_url: webcam/?action=snapshot",
            "[camera] snapshot_url: must be an http:// or https:// URL, or a path on "
            "Moonraker's host starting with '/', got 'webcam/?action=snapshot'",
        ),
        (
            "[camera]\nwebcam: one\n  two",
            "[camera] webcam: must be a single line, got 'one\\ntwo'",
        ),
        (
            "[camera]\nsnapshoturl: http://x/snap",
            "[camera] snapshoturl: unknown option; did you mean 'snapshot_url'?",
        ),
        (
            "[camera]\nflip_h: true",
            "[camera] flip_h: unknown option; did you mean 'flip_horizontal'?",
        ),
        (
            "[camera]\ninterval: 5",
            "[camera] interval: unknown option; it belongs in [detection]",
        ),
        (
            "[camera]\nfps: 5",
            "[camera] fps: unknown option; options of [camera]: snapshot_url, webcam, timeout, "
            "max_size, flip_horizontal, flip_vertical, rotation, max_pixels, mask, webcams",
        ),
        (
            "[moonraker]\nurl: tcp://localhost:7125",
            "[moonraker] url: must be a ws:// or wss:// URL (http:// and https:// are "
            "converted), got 'tcp://localhost:7125'",
        ),
        (
            "[moonraker]\nurl: localhost:7125",
            "[moonraker] url: must be a ws:// or wss:// URL (http:// and https:// are "
            "converted), got 'localhost:7125'",
        ),
        (
            "[logging]\nlevel: LOUD",
            "[logging] level: must be one of: DEBUG, INFO, WARNING, ERROR; got 'LOUD'",
        ),
        (
            "[logging]\nbackups: 101",
            "[logging] backups: must be an integer <= 100, got '101'",
        ),
        (
            "[state]\npath:",
            "[state] path: must not be empty",
        ),
        (
            "[actions]\non_failure: pasue",
            "[actions] on_failure: unknown action 'pasue'; allowed: pause, cancel, "
            "heaters_off, extruder_off, bed_off, notify, gcode",
        ),
        (
            "[actions]\non_warning: notify, Notify",
            "[actions] on_warning: action 'notify' is listed more than once",
        ),
        (
            "[actions]\non_failure: pause, cancel",
            "[actions] on_failure: 'pause' and 'cancel' cannot be used together",
        ),
        (
            "[actions]\non_failure: pause, gcode",
            "[actions] failure_gcode: required because on_failure includes 'gcode'",
        ),
        (
            "[actions]\non_warning: gcode\non_failure: gcode",
            "[actions] failure_gcode: required because on_warning and on_failure include 'gcode'",
        ),
        (
            "[actions]\nheaters_off_delay: -5",
            "[actions] heaters_off_delay: must be a number >= 0, got '-5'",
        ),
        (
            "[camra]\ntimeout: 5",
            "[camra]: unknown section; did you mean '[camera]'?",
        ),
        (
            "[webcam]\nsnapshot_url: http://x/",
            "[webcam]: unknown section; did you mean '[camera]'?",
        ),
        (
            "[DEFAULT]\ntimeout: 5",
            "[DEFAULT]: unknown section; known sections: [moonraker], [camera], [predictor], "
            "[detection], [actions], [state], [logging], [snapshots], [notify], [record]",
        ),
    ],
)
def test_bad_value_messages(extra: str, message: str) -> None:
    assert one_error(with_minimal(extra + "\n")) == f"{P}: {message}"


def test_bad_predictor_timeout() -> None:
    assert errors_of(MINIMAL + "timeout: 0\n") == [
        f"{P}: [predictor] timeout: must be a number >= 1, got '0'"
    ]


def test_bad_backend() -> None:
    assert errors_of("[predictor]\nbackend: octoprint\n") == [
        f"{P}: [predictor] backend: must be one of: obico, obico_ml_api, printwatch, pinozcam, "
        "onnx; "
        "got 'octoprint'"
    ]


def test_required_for_backend() -> None:
    assert errors_of("") == [
        f"{P}: [predictor] serial_no: required for backend 'obico'",
        f"{P}: [predictor] access_token: required for backend 'obico'",
    ]
    assert errors_of("[predictor]\nserial_no: X\naccess_token:\n") == [
        f"{P}: [predictor] access_token: required for backend 'obico'"
    ]


def test_duplicate_option() -> None:
    text = "[camera]\ntimeout: 5\nwebcam: a\ntimeout: 6\n"
    assert errors_of(text) == [
        f"{P}: line 4: [camera] timeout: duplicate option; each option may appear only once "
        "per section"
    ]


def test_duplicate_section() -> None:
    text = MINIMAL + "[camera]\n[logging]\n[camera]\n"
    assert errors_of(text) == [
        f"{P}: line 6: [camera]: duplicate section; each section may appear only once"
    ]


def test_option_outside_section() -> None:
    assert errors_of("timeout: 5\n" + MINIMAL) == [
        f"{P}: line 1: option outside any section; put it below a [section] header"
    ]


def test_unparsable_lines_are_all_reported() -> None:
    text = MINIMAL + "[camera]\nthis is not an option\ntimeout: 5\nneither is this\n"
    expected = (
        "cannot parse this line; expected '[section]', 'option: value', a comment, "
        "or an indented continuation of a value"
    )
    assert errors_of(text) == [f"{P}: line 5: {expected}", f"{P}: line 7: {expected}"]


def test_several_errors_reported_together() -> None:
    text = """\
[predictor]
serial_no: SN
[camera]
snapshoturl: http://cam/snap
timeout: fast
[detection]
interval: 0.05
threshold_low: 0.9
[actions]
on_failure: pasue, cancel, pause, gcode
[logging]
level: chatty
[extra]
"""
    assert str(_raises(text)) == "\n".join(
        [
            f"{P}: [camera] timeout: must be a number >= 0.5 and <= 120, got 'fast'",
            f"{P}: [predictor] access_token: required for backend 'obico'",
            f"{P}: [detection] interval: must be a number >= 0.1, got '0.05'",
            f"{P}: [detection] threshold_high: must be >= threshold_low (0.9), got '0.78'",
            f"{P}: [actions] on_failure: unknown action 'pasue'; allowed: pause, cancel, "
            "heaters_off, extruder_off, bed_off, notify, gcode",
            f"{P}: [actions] on_failure: 'pause' and 'cancel' cannot be used together",
            f"{P}: [actions] failure_gcode: required because on_failure includes 'gcode'",
            f"{P}: [logging] level: must be one of: DEBUG, INFO, WARNING, ERROR; got 'chatty'",
            f"{P}: [camera] snapshoturl: unknown option; did you mean 'snapshot_url'?",
            f"{P}: [extra]: unknown section; known sections: [moonraker], [camera], "
            "[predictor], [detection], [actions], [state], [logging], [snapshots], [notify], "
            "[record]",
        ]
    )


def _raises(text: str, path: str = P) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, path)
    return info.value


def test_default_path_in_messages_is_string_marker() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("")
    assert str(info.value).startswith("<string>: [predictor] serial_no: ")


# ---------------------------------------------------------------------------
# Files that cannot be read
# ---------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.cfg"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: config file not found; create it (see config/failwatch.cfg.example; "
        "at least [predictor] serial_no and access_token are needed) "
        "or pass the right path with -c"
    )
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(info.value) == f"{tmp_path}: is a directory, not a config file"


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "failwatch.cfg"
    path.write_text(MINIMAL, encoding="utf-8")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    # chmod 0 does not stop root, so make the module's open() refuse instead.
    monkeypatch.setattr(cfgmod, "open", refuse, raising=False)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: cannot read the config file (permission denied); "
        "make it readable by the user failwatch runs as"
    )


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "failwatch.cfg"
    path.write_bytes(b"[predictor]\nserial_no: \xff\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: not a UTF-8 text file (bad byte at offset 23); save it as UTF-8"
    )


def test_errors_in_a_loaded_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "failwatch.cfg"
    path.write_text(with_minimal("[detection]\ninterval: 0.05\n"), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: [detection] interval: must be a number >= 0.1, got '0.05'"


# ---------------------------------------------------------------------------
# Secrets never appear in error text
# ---------------------------------------------------------------------------

TOKEN = "tok-5f2b9c0e7d1a"
KEY = "key-a1b2c3d4e5f6"


def _full_text(exc: BaseException) -> str:
    return str(exc) + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


@pytest.mark.parametrize(
    "text",
    [
        # bad values of the secret options themselves
        f"[predictor]\nserial_no: S\naccess_token: {TOKEN} extra\n[moonraker]\napi_key: {KEY} x\n",
        f"[predictor]\nserial_no: S\naccess_token: {TOKEN}\n  {TOKEN}\n",
        # the secret pasted on a line of its own (a parse error)
        f"[predictor]\nserial_no: S\naccess_token:\n{TOKEN}\n",
        f"[predictor]\nserial_no: S\naccess_token {TOKEN}\n",
        # secret pasted before any section
        f"access_token: {TOKEN}\n[predictor]\n",
        # a duplicate secret option
        f"[predictor]\naccess_token: {TOKEN}\naccess_token: {TOKEN}\n",
        # valid secrets alongside many other errors
        f"[predictor]\nserial_no:\naccess_token: {TOKEN}\n[moonraker]\napi_key: {KEY}\n"
        "url: nope\n[camera]\nrotation: 1\n[bogus]\n",
        # unknown options near the secret names
        f"[predictor]\nserial_no: S\naccess_tokn: {TOKEN}\n[moonraker]\napikey: {KEY}\n",
        # the secret also (wrongly) used as another option's value
        f"[predictor]\nserial_no: S\naccess_token: {TOKEN}\ntimeout: {TOKEN}\n",
    ],
)
def test_secrets_never_in_errors(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, P)
    shown = _full_text(info.value)
    assert TOKEN not in shown
    assert KEY not in shown


def test_bad_secret_messages() -> None:
    text = f"[predictor]\nserial_no: S\naccess_token: {TOKEN} x\n[moonraker]\napi_key: {KEY} x\n"
    assert errors_of(text) == [
        f"{P}: [moonraker] api_key: must not contain spaces or line breaks (value not shown)",
        f"{P}: [predictor] access_token: must not contain spaces or line breaks (value not shown)",
    ]
