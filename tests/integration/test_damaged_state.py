"""A damaged state file through a real start: the daemon watches, the file is kept.

Issue 10 item 9: not UTF-8 used to be a crash loop under systemd; NaN statistics
used to blind the printer for good. Now the damaged file is kept as
``state.json.corrupt-<UTC time>``, the log says so, and the print is watched with
fresh (finite) statistics that are saved back.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import pytest

from sim.daemon_config import config_for
from sim.harness import SimPrinter
from sim.waits import running_daemon

pytestmark = pytest.mark.usefixtures("require_moonraker")


@pytest.mark.parametrize("content", [
    b"\xff\xfe\x00\x01 not text",
    b'{"session": {"stats": {"ewm_mean": NaN, "rolling_mean_long": -1e6, '
    b'"prediction_num_lifetime": 900}}}',
])
async def test_a_damaged_state_file_is_kept_and_the_print_is_watched(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes) -> None:
    caplog.set_level(logging.INFO)
    state = tmp_path / "failwatch" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_bytes(content)
    (state.parent / "state.json.123abc.tmp").write_text('{"half')  # a kill mid-save
    async with SimPrinter() as printer:
        printer.predictor.score = lambda frame, print_id: 0.02
        cfg = config_for(printer, tmp_path / "failwatch.cfg")
        async with running_daemon(cfg) as daemon:
            assert await printer.start_print("benchy.gcode") is not None
            await printer.predictor.wait_for_requests(5, timeout=20)
            assert printer.klippy.status["print_stats"]["state"] == "printing"
        counted = daemon.session.stats.prediction_num
    [kept] = list(state.parent.glob("state.json.corrupt-*"))
    assert kept.read_bytes() == content
    assert f"kept as {kept}" in caplog.text and "watching goes on" in caplog.text
    assert not list(state.parent.glob("*.tmp"))

    def refuse(name: str) -> Any:
        raise AssertionError(name)
    saved = json.loads(state.read_text(), parse_constant=refuse)["session"]["stats"]
    assert saved["prediction_num"] == counted >= 4
    assert all(math.isfinite(saved[k]) and 0 <= saved[k] < 1
               for k in ("p", "ewm_mean", "rolling_mean_short", "rolling_mean_long"))
    if b"900" in content:  # the valid part of the damaged file is kept
        assert saved["prediction_num_lifetime"] == 900 + counted
