"""failwatch_moonraker.secrets: what a user reads never carries a secret."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from failwatch_moonraker import secrets
from failwatch_moonraker.logs import RedactSecrets
from failwatch_moonraker.printer.actions import respond_script
from failwatch_moonraker.printer.control import CommandError, parse_command

TOKEN = "tok-3f9a8b7c6d5e"


@pytest.fixture(autouse=True)
def registered() -> Iterator[None]:
    secrets.forget()
    secrets.register([TOKEN])
    yield
    secrets.forget()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a 401 body echoing the credentials, as JSON and as a form
        ('HTTP 401: {"error": "bad credentials", "access_token": "' + TOKEN + '"}',
         'HTTP 401: {"error": "bad credentials", "access_token": "***"}'),
        ("HTTP 401: access_token=" + TOKEN + "&serial_no=SN1",
         "HTTP 401: access_token=***&serial_no=SN1"),
        # a token the config does not know, echoed under a secret's name
        ("{'api_key': 'other-key-0001'}", "{'api_key': '***'}"),
        ("Authorization: Bearer abcdef.ghijk", "Authorization: Bearer ***"),
        # URL passwords
        ("snapshot URL http://cam:s3cretpw@192.168.1.5/snap answered HTTP 500",
         "snapshot URL http://cam:***@192.168.1.5/snap answered HTTP 500"),
        ("rtsp://admin:hunter2@cam.local:554/live", "rtsp://admin:***@cam.local:554/live"),
        # the registered value anywhere
        (f"token {TOKEN} refused", "token *** refused"),
        # what must stay
        ("ws://127.0.0.1:7125/websocket", "ws://127.0.0.1:7125/websocket"),
        ("http://cam.local:8080/?action=snapshot", "http://cam.local:8080/?action=snapshot"),
        ("Check [predictor] serial_no and access_token in failwatch.cfg",
         "Check [predictor] serial_no and access_token in failwatch.cfg"),
        ("[predictor] access_token: must not contain spaces",
         "[predictor] access_token: must not contain spaces"),
        ("p=0.020 with 1 detection(s)", "p=0.020 with 1 detection(s)"),
    ],
)
def test_scrub(text: str, expected: str) -> None:
    assert secrets.scrub(text) == expected


def test_short_values_are_not_scrubbed_alone() -> None:
    secrets.register(["1", "abc"])
    assert secrets.scrub("level 1 abc") == "level 1 abc"


def test_console_line_is_scrubbed() -> None:
    script = respond_script(
        'the predictor refused the credentials (HTTP 401): {"access_token": "' + TOKEN
        + '"}; camera http://u:campass@cam/snap', error=True)
    assert TOKEN not in script and "campass" not in script
    assert script.startswith('RESPOND PREFIX="!! failwatch:" MSG="the predictor refused')
    assert "http://u:(hidden)@cam/snap" in script  # "*" would start a checksum
    assert "{'access_token': '(hidden)'}" in script


def test_log_lines_are_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    record = logging.LogRecord("failwatch", logging.WARNING, __file__, 1,
                               "camera: cannot reach http://me:pw1234@cam/x: %s", ("boom",),
                               None)
    assert RedactSecrets(["other"]).filter(record)
    assert record.getMessage() == "camera: cannot reach http://me:***@cam/x: boom"
    record = logging.LogRecord("failwatch", logging.ERROR, __file__, 1, "predictor: %s",
                               ("refused (HTTP 401): Invalid credentials: serial_no=SN "
                                "access_token=unknown-to-config-42",), None)
    assert RedactSecrets([]).filter(record)
    assert record.getMessage() == ("predictor: refused (HTTP 401): Invalid credentials: "
                                   "serial_no=SN access_token=***")


def test_secret_values_of_a_config(tmp_path) -> None:
    from failwatch_moonraker.config import load_config

    cfg = tmp_path / "failwatch.cfg"
    cfg.write_text("[predictor]\nserial_no: SN-1\naccess_token: ATOKEN-1234\n"
                   "[camera]\nsnapshot_url: http://viewer:campw-9876@cam.local/snap\n")
    values = secrets.secret_values(load_config(cfg))
    assert "ATOKEN-1234" in values and "campw-9876" in values


def test_every_named_camera_s_url_password_is_a_secret(tmp_path) -> None:
    from failwatch_moonraker.config import load_config

    cfg = tmp_path / "failwatch.cfg"
    cfg.write_text("[predictor]\nserial_no: SN-1\naccess_token: ATOKEN-1234\n"
                   "[camera nozzle]\nsnapshot_url: http://viewer:nozzlepw-111@cam.local/a\n"
                   "[camera bed]\nsnapshot_url: http://viewer:bedpw-2222@cam.local/b\n")
    secrets.register(secrets.secret_values(load_config(cfg)))
    line = secrets.scrub("camera bed: cannot reach http://viewer:bedpw-2222@cam.local/b; "
                         "camera nozzle http://viewer:nozzlepw-111@cam.local/a")
    assert "bedpw-2222" not in line and "nozzlepw-111" not in line


def test_unknown_command_is_cut() -> None:
    with pytest.raises(CommandError) as err:
        parse_command({"cmd": "x" * 100_000})
    text = str(err.value)
    assert len(text) < 200, text
    assert text.startswith("unknown command 'xxxxxxxx") and "(100000 characters)" in text
    with pytest.raises(CommandError) as err:
        parse_command({"cmd": "sensitivity", "value": "9" * 100_000})
    assert len(str(err.value)) < 300
