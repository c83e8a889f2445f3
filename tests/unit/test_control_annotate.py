"""Macro commands refused or accepted, and the annotated snapshot folder's caps."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from failwatch_moonraker.camera.annotate import SnapshotStore, draw
from failwatch_moonraker.printer.actions import failure_dialog
from failwatch_moonraker.printer.control import Command, CommandError, Settings, parse_command


@pytest.mark.parametrize(
    ("params", "command"),
    [
        ({"cmd": "status", "value": ""}, Command("status")),
        ({"cmd": "ENABLE"}, Command("enable")),
        ({"cmd": "sensitivity", "value": "1.25"}, Command("sensitivity", 1.25)),
        ({"cmd": "sensitivity", "value": 0.1}, Command("sensitivity", 0.1)),
        (None, Command("status")),
    ],
)
def test_accepted(params: object, command: Command) -> None:
    assert parse_command(params) == command


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"cmd": "explode"}, "unknown command 'explode'; allowed: status, enable, disable, "
                             "ignore_print, sensitivity, test"),
        ({"cmd": "sensitivity", "value": "nan"}, "got 'nan'"),
        ({"cmd": "sensitivity", "value": "inf"}, "got 'inf'"),
        ({"cmd": "sensitivity", "value": "0.05"}, "a number from 0.1 to 5"),
        ({"cmd": "sensitivity", "value": ""}, "got 'nothing'"),
    ],
)
def test_refused(params: object, message: str) -> None:
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_command(params)


def test_settings_from_damaged_state() -> None:
    assert Settings.from_dict({"enabled": False, "sensitivity": 9}) == Settings(False, None)
    assert Settings.from_dict("x") == Settings()
    assert Settings.from_dict({"sensitivity": 1.2}) == Settings(True, 1.2)


def test_dialog_without_the_macros_falls_back_to_klippers_commands() -> None:
    script = failure_dialog("score 1.2", "", with_macros=False)
    assert 'MSG="action:prompt_footer_button Resume|RESUME|primary"' in script
    assert "_FAILWATCH" not in script and "ignore" not in script
    assert script.splitlines()[-1] == 'RESPOND TYPE=command MSG="action:prompt_show"'
    assert "does not reheat" not in script
    # that RESUME does not reheat: the dialog says so when failwatch turns heaters off
    script = failure_dialog("score 1.2", "", with_macros=False, heaters_off=True)
    assert ('MSG="action:prompt_text failwatch turns heaters off and this Resume does not '
            'reheat: heat up first (M109, M190) or include failwatch_macros.cfg"') in script
    assert "does not reheat" not in failure_dialog("x", "", with_macros=True, heaters_off=True)


def _jpeg(colour: tuple[int, int, int] = (40, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (200, 100), colour).save(buf, format="JPEG")
    return buf.getvalue()


def test_boxes_below_the_visualisation_threshold_are_not_drawn() -> None:
    out = Image.open(io.BytesIO(draw(_jpeg(), [(0.9, (50, 50, 40, 40)),
                                               (0.15, (150, 50, 40, 40))], "x"))).convert("RGB")
    r, g, b = out.getpixel((31, 50))  # type: ignore[misc]
    assert g > 180 and r < 100  # left edge of the 0.9 box
    r, g, b = out.getpixel((131, 50))  # type: ignore[misc]
    assert g < 100  # the 0.15 box counts towards p but is not drawn


def test_retention_by_count_and_size(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path / "logs" / "snaps"), max_count=3, max_size=10**9)
    saved = []
    for i in range(5):
        s = store.save(_jpeg(), [], "x", f"n{i}")
        assert s is not None
        os.utime(s.path, (1000 + i, 1000 + i))
        saved.append(s.path)
    store.prune()
    assert sorted(p.name for p in (tmp_path / "logs" / "snaps").iterdir()) == \
        sorted(p.name for p in saved[-3:])
    size = saved[-1].stat().st_size
    store.max_size = size * 2
    store.prune()
    assert len(list((tmp_path / "logs" / "snaps").iterdir())) == 2
    assert saved[-1].exists()
    assert store.link_for(saved[-1]) == f"/server/files/logs/snaps/{saved[-1].name}"


def test_an_unwritable_folder_is_reported_once(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = SnapshotStore(str(blocker / "snaps"), max_count=3, max_size=10**9)
    assert store.save(_jpeg(), [], "x", "a") is None
    assert store.save(_jpeg(), [], "x", "b") is None
    assert caplog.text.count("cannot save an annotated snapshot") == 1


def test_apprise_gets_title_body_and_the_image(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import sys
    import types

    from failwatch_moonraker.notify import Event, Notifier

    sent: list[dict[str, object]] = []

    class FakeApprise:
        def __init__(self) -> None:
            self.urls: list[str] = []

        def add(self, url: str) -> None:
            self.urls.append(url)

        def notify(self, **kwargs: object) -> bool:
            sent.append({"urls": self.urls, **kwargs})
            return True

    monkeypatch.setitem(sys.modules, "apprise", types.SimpleNamespace(Apprise=FakeApprise))
    image = tmp_path / "snap.jpg"
    image.write_bytes(_jpeg())
    event = Event(printer="voron", print_id="000004", filename="a.gcode", level="failure",
                  message="Print failure detected", p=1.5, stats={}, image_path=str(image))
    notifier = Notifier(None, (), ("tgram://token/chat",))  # type: ignore[arg-type]
    asyncio.run(notifier.send(event))
    assert sent == [{"urls": ["tgram://token/chat"], "title": "failwatch: failure on voron",
                     "body": "Print failure detected", "attach": str(image)}]
    assert notifier.sent == 1
