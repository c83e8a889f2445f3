"""Hostile predictor answers through the real Moonraker: skipped, not counted, never a pause.

Issue 10 items 1-2: a NaN, an infinity, ``-1e6``, a 400-digit integer, JSON nested
100,000 deep or a 5 MiB answer is a bad answer. The user sees one warning per bad
answer, the healthy print goes on unpaused, the later frames are counted as usual
and the statistics saved in the state file stay finite.
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
from sim.predictor import hostile_answers
from sim.waits import running_daemon, wait_until

pytestmark = pytest.mark.usefixtures("require_moonraker")

QUIET = 0.02


def _strict(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise AssertionError(f"the state file holds {name}")
    return json.loads(text, parse_constant=refuse)


async def test_hostile_answers_never_pause_and_watching_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    bad = hostile_answers()
    async with SimPrinter() as printer:
        predictor = printer.predictor
        predictor.score = lambda frame, print_id: QUIET
        for answer in bad:  # each bad answer after a good one, so no backoff builds up
            predictor.hostile.extend([None, answer])
        cfg = config_for(printer, tmp_path / "failwatch.cfg")
        async with running_daemon(cfg) as daemon:
            job = await printer.start_print("benchy.gcode")
            assert job is not None
            print_id = job["job_id"]
            # every bad answer served, then ten more good frames after the last one
            await wait_until(lambda: not predictor.hostile and predictor.frames(print_id) >=
                             len(bad) + 10, timeout=60, what="the bad answers and 10 more")
            await wait_until(lambda: daemon.session.stats.prediction_num ==
                             predictor.frames(print_id), timeout=10,
                             what="the daemon to count every good frame")
            stats = daemon.session.stats
            assert all(math.isfinite(v) for v in
                       (stats.p, stats.ewm_mean, stats.rolling_mean_short,
                        stats.rolling_mean_long))
            assert abs(stats.p - QUIET) < 1e-9 and abs(stats.ewm_mean - QUIET) < 0.02
            assert printer.klippy.status["print_stats"]["state"] == "printing"
        counted = daemon.session.stats.prediction_num
    served = [r.get("hostile") for r in predictor.requests if r.get("hostile")]
    assert served == [b.name for b in bad]
    assert [line for line in printer.klippy.gcode_lines if line.split()[:1] == ["PAUSE"]] == []
    assert not [c for c in printer.klippy.console if "failure" in c.lower()]
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno >= logging.WARNING and r.getMessage().startswith("predictor:")]
    assert len(warnings) == len(bad), warnings  # one clear line per bad answer
    assert sum("bad answer" in w for w in warnings) == len(bad) - 1  # and one HTTP 500
    assert any("'p' is nan, not a number from 0 to 1000" in w for w in warnings)
    assert any("'p' is 1111" in w and "not a number" in w for w in warnings)
    assert any("nested too deep" in w for w in warnings)
    assert any("larger than 4 MiB" in w for w in warnings)
    assert all("print not touched" in w for w in warnings)
    assert "Traceback" not in caplog.text and "Task exception" not in caplog.text
    saved = _strict((tmp_path / "failwatch" / "state.json").read_text())["session"]["stats"]
    assert saved["prediction_num"] == counted == predictor.frames(print_id)
    assert all(math.isfinite(saved[k]) and 0 <= saved[k] < 1
               for k in ("p", "ewm_mean", "rolling_mean_short", "rolling_mean_long"))
