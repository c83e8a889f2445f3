"""The recorder thread survives any error in a recording (issue 10 item 10).

A NaN in a frame (``allow_nan=False``) used to kill the writer thread, which then
logged a misleading "disk is too slow" and made shutdown wait 5 s. Now any error is
logged once, recording pauses until the next print, and close() stays under 2 s.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from pathlib import Path

import pytest

from failwatch_moonraker.predictors import Prediction
from failwatch_moonraker.tools import record, recording
from failwatch_moonraker.tools.record import Recorder
from tests.unit.test_record import T0, config, feed, new_session, records


def feed_nan(recorder: Recorder, session, frames: int) -> None:  # type: ignore[no-untyped-def]
    for _ in range(frames):
        now = T0 + 10.0 * (session.stats.prediction_num + 1)
        outcome = session.on_frame(0.02, now)
        recorder.frame(now, Prediction(0.02, ((math.nan, (1.0, 2.0, 3.0, 4.0)),)), outcome,
                       session, "local", None, {"filename": "cube.gcode"})


async def test_a_nan_in_a_frame_is_logged_once_and_recording_pauses(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="failwatch.record")
    folder = tmp_path / "rec"
    session = new_session("a")
    recorder = Recorder(config(folder), session, "mk4")
    feed(recorder, session, 2)
    feed_nan(recorder, session, 1)
    feed(recorder, session, 50)
    recorder.flush(10)
    assert recorder._queue.unfinished_tasks == 0  # the thread is alive and took them all
    assert recorder._thread is not None and recorder._thread.is_alive()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1, errors
    assert "cannot record a frame of print a" in errors[0] and "ValueError" in errors[0]
    assert "recording paused until the next print (watching goes on)" in errors[0]
    assert "too slow" not in caplog.text
    lines = records(folder / "a.jsonl")
    assert [line.get("type") for line in lines] == ["header", None, None]  # paused after 2
    session.end_print()
    session.begin_print("b")
    feed(recorder, session, 3)
    started = time.monotonic()
    await recorder.close()
    assert time.monotonic() - started < 2.0
    assert len(records(folder / "b.jsonl")) == 4  # the next print is recorded again


async def test_close_stays_under_two_seconds_when_the_writer_is_stuck(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    real_write = record._Writer.write

    def stuck(self: record._Writer, item: record._Item) -> None:
        release.wait(30)
        real_write(self, item)

    monkeypatch.setattr(record._Writer, "write", stuck)
    session = new_session("a")
    recorder = Recorder(config(tmp_path / "rec"), session, "mk4")
    feed(recorder, session, 2100)  # the queue is full too
    started = time.monotonic()
    await asyncio.wait_for(recorder.close(), 5)
    assert time.monotonic() - started < 2.0
    release.set()


def test_a_recording_with_scores_the_statistics_refuse_is_read_without_them(
        tmp_path: Path) -> None:
    header = ('{"type": "header", "format": "failwatch-recording", "version": 1, '
              '"print_id": "a", "stats": {}, "params": {}}')
    frames = ['{"t": 1, "p": 0.1}', '{"t": 2, "p": -5}', '{"t": 3, "p": 1e300}',
              '{"t": 4, "p": ' + "1" * 400 + "}", "[" * 100_000 + "]" * 100_000,
              '{"t": 5, "p": 0.2}']
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join([header, *frames]) + "\n")
    rec = recording.read_recording(path)
    assert [f.p for f in rec.frames] == [0.1, 0.2] and rec.bad_lines == 4
    csv_path = tmp_path / "a.csv"
    csv_path.write_text("time,p\n0,0.1\n10,-3\n")
    with pytest.raises(recording.RecordingError, match="line 3: p must be a number from 0 to 1000"):
        recording.read_recording(csv_path)
