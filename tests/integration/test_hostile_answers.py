"""Hostile predictor answers through the real Moonraker: skipped, not counted, never a pause.

Issue 10 items 1-3, for every backend: a NaN, an infinity, ``-1e6``, a 400-digit
integer, a PrintWatch ``statusCode`` of ``"nan"``, JSON nested 100,000 deep or a
5 MiB answer is a bad answer. The user sees one warning per bad answer, the healthy
print goes on unpaused, the later frames are counted as usual and the statistics
saved in the state file stay finite. A ``Retry-After`` of 1e8 s waits 10 minutes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sim.daemon_config import config_for
from sim.harness import SimPrinter
from sim.ml_api import FakeMLAPI
from sim.predictor import Hostile, hostile_answers
from sim.printwatch import FakePrintWatch
from sim.waits import running_daemon, wait_until

pytestmark = pytest.mark.usefixtures("require_moonraker")

QUIET = 0.02


def _strict(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise AssertionError(f"the state file holds {name}")
    return json.loads(text, parse_constant=refuse)


@dataclass
class Backend:
    cfg: Path
    hostile: Any  # the fake's deque of raw answers
    requests: list[dict[str, Any]]
    good_frames: Callable[[], int]  # answers the fake scored normally


@contextlib.asynccontextmanager
async def backend(name: str, printer: SimPrinter, tmp_path: Path) -> AsyncIterator[Backend]:
    cfg_path = tmp_path / "failwatch.cfg"
    if name == "obico":
        fake = printer.predictor
        fake.score = lambda frame, print_id: QUIET
        yield Backend(config_for(printer, cfg_path), fake.hostile, fake.requests,
                      lambda: sum(fake.frames(p) for p in fake.print_ids))
    elif name == "obico_ml_api":
        async with FakeMLAPI() as ml:
            ml.score = lambda frame, url: QUIET
            cfg = config_for(printer, cfg_path, predictor={
                "backend": "obico_ml_api", "url": ml.url, "image_bind": "127.0.0.1",
                "image_port": 0})
            yield Backend(cfg, ml.hostile, ml.requests, lambda: ml.frames)
    else:
        async with FakePrintWatch("sub_sim-key") as pw:
            pw.score = lambda frame, ticket: QUIET
            cfg = config_for(printer, cfg_path, predictor={
                "backend": "printwatch", "url": pw.url, "api_key": "sub_sim-key"})
            yield Backend(cfg, pw.hostile, pw.requests, lambda: sum(pw.frames.values()))


@pytest.mark.parametrize("name", ["obico", "obico_ml_api", "printwatch"])
async def test_hostile_answers_never_pause_and_watching_goes_on(
        name: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    bad = hostile_answers(name)
    async with SimPrinter() as printer, backend(name, printer, tmp_path) as fake:
        for answer in bad:  # each bad answer after a good one, so no backoff builds up
            fake.hostile.extend([None, answer])
        async with running_daemon(fake.cfg) as daemon:
            assert await printer.start_print("benchy.gcode") is not None
            # every bad answer served, then ten more good frames after the last one
            await wait_until(lambda: not fake.hostile and fake.good_frames() >= len(bad) + 10,
                             timeout=60, what="the bad answers and 10 more")
            await wait_until(lambda: daemon.session.stats.prediction_num ==
                             fake.good_frames(), timeout=10,
                             what="the daemon to count every good frame, and only those")
            stats = daemon.session.stats
            assert abs(stats.p - QUIET) < 1e-9 and abs(stats.ewm_mean - QUIET) < 0.02
            assert printer.klippy.status["print_stats"]["state"] == "printing"
        counted = daemon.session.stats.prediction_num
    served = [r["hostile"] for r in fake.requests if r.get("hostile")]
    assert served == [b.name for b in bad]
    assert [line for line in printer.klippy.gcode_lines if line.split()[:1] == ["PAUSE"]] == []
    assert not [c for c in printer.klippy.console if "failure" in c.lower()]
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno >= logging.WARNING and r.getMessage().startswith("predictor:")]
    assert len(warnings) == len(bad), warnings  # one clear line per bad answer
    assert sum("bad answer" in w for w in warnings) == len(bad) - 1  # and one HTTP 500
    assert all("print not touched" in w for w in warnings)
    assert any("is nan, not a number from 0 to 1000" in w for w in warnings)
    assert any("nested too deep" in w for w in warnings)
    assert any("larger than 4 MiB" in w for w in warnings)
    assert "Traceback" not in caplog.text and "Task exception" not in caplog.text
    saved = _strict((tmp_path / "failwatch" / "state.json").read_text())["session"]["stats"]
    assert saved["prediction_num"] == counted == fake.good_frames()
    assert all(math.isfinite(saved[k]) and 0 <= saved[k] < 1
               for k in ("p", "ewm_mean", "rolling_mean_short", "rolling_mean_long"))


@pytest.mark.parametrize(("name", "answer"), [
    ("obico", Hostile(b'{"error": "slow down"}', status=429,
                      headers=(("Retry-After", "1e8"),))),
    ("printwatch", Hostile(b'{"statusCode": 213, "message": "slow", "interval": 1e999}')),
])
async def test_a_huge_retry_after_waits_ten_minutes_not_for_ever(
        name: str, answer: Hostile, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with SimPrinter() as printer, backend(name, printer, tmp_path) as fake:
        fake.hostile.extend([None, answer])
        async with running_daemon(fake.cfg):
            assert await printer.start_print("benchy.gcode") is not None
            await wait_until(lambda: "next frame in" in caplog.text, timeout=30,
                             what="the rate-limit line")
    line = next(r.getMessage() for r in caplog.records if "next frame in" in r.getMessage())
    assert line.endswith("next frame in 600 s"), line
