"""Fault backoff: capped for ever, quick again after a reset (issue 10 item 5)."""

from __future__ import annotations

import logging

import pytest

from failwatch_moonraker.faults import FAULT_BACKOFF_CAP, FaultTracker


def test_a_camera_dead_all_night_keeps_a_capped_backoff() -> None:
    fault = FaultTracker("camera")
    waits = [fault.failed("snapshot URL answered HTTP 500", 1.0) for _ in range(20_000)]
    assert waits[:6] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert set(waits[5:]) == {FAULT_BACKOFF_CAP}  # 2.0 ** 1024 once raised OverflowError
    assert fault.count == 20_000


def test_a_new_print_starts_with_quick_retries(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    fault = FaultTracker("camera")
    for _ in range(50):
        fault.failed("no image", 1.0)
    fault.reset()
    assert fault.count == 0 and fault.failed("no image", 1.0) == 1.0
    assert "next try in 1 s" in caplog.records[-1].getMessage()


def test_recovery_is_logged_once_with_the_count(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    fault = FaultTracker("camera side")
    for _ in range(3):
        fault.failed("no image", 1.0)
    fault.ok()
    fault.ok()
    ok_lines = [r.getMessage() for r in caplog.records if "working again" in r.getMessage()]
    assert ok_lines == ["camera side: working again after 3 failed attempt(s)"]
