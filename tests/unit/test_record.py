"""The recorder on its own: file layout, restarts, retention, a folder that cannot be written."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from failwatch_moonraker.config import RecordConfig, parse_config
from failwatch_moonraker.core.session import SessionParams, WatchSession
from failwatch_moonraker.core.stats import TemporalStats
from failwatch_moonraker.predictors import Prediction
from failwatch_moonraker.tools.record import Recorder
from failwatch_moonraker.tools.recording import read_recording

T0 = 1_750_000_000.0


def config(folder: Path, **kw: Any) -> RecordConfig:
    values: dict[str, Any] = {"enabled": True, "path": str(folder), "frames": False,
                              "max_prints": 50, "max_size": 500 * 1024 * 1024}
    values.update(kw)
    return RecordConfig(**values)


def new_session(print_id: str = "0001") -> WatchSession:
    session = WatchSession(SessionParams(),
                           TemporalStats(rolling_mean_long=0.04, prediction_num_lifetime=500))
    session.on_print_state("printing", T0)
    session.begin_print(print_id)
    return session


def feed(recorder: Recorder, session: WatchSession, frames: int, *, p: float = 0.02,
         jpeg: bytes | None = None, t0: float = T0) -> None:
    for _ in range(frames):
        now = t0 + 10.0 * (session.stats.prediction_num + 1)
        outcome = session.on_frame(p, now)
        assert outcome is not None
        recorder.frame(now, Prediction(p, ((p, (10.0, 20.0, 30.0, 40.0)),)), outcome, session,
                       "test", jpeg, {"filename": "cube.gcode",
                                     "total_duration": 10.0 * session.stats.prediction_num})


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def old_recording(folder: Path, name: str, mtime: float, size: int = 1000,
                  frames: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.jsonl"
    path.write_text("x" * (size - 1) + "\n")
    if frames:
        (folder / f"{name}.frames").mkdir()
        (folder / f"{name}.frames" / "000001.jpg").write_bytes(b"j" * frames)
    os.utime(path, (mtime, mtime))


async def test_header_then_one_line_per_frame(tmp_path: Path) -> None:
    session = new_session()
    recorder = Recorder(config(tmp_path), session, "mk4")
    feed(recorder, session, 5)
    await recorder.close()
    lines = records(tmp_path / "0001.jsonl")
    header = lines[0]
    assert header["type"] == "header" and header["print_id"] == "0001"
    assert header["printer"] == "mk4" and header["file"] == "cube.gcode"
    assert header["start_time"] == pytest.approx(T0)
    assert header["stats"]["rolling_mean_long"] == 0.04
    assert header["stats"]["prediction_num_lifetime"] == 500
    assert header["params"]["sensitivity"] == 1.0
    frames = lines[1:]
    assert len(frames) == 5
    assert frames[-1]["stats"] == session.stats.to_dict()
    assert frames[0]["detections"] == [[0.02, [10.0, 20.0, 30.0, 40.0]]]
    assert {f["level"] for f in frames} == {"ok"} and frames[0]["predictor"] == "test"
    # the single unnamed camera: the layout of old recordings, no camera anywhere
    assert "cameras" not in header and not any("camera" in f or "seen" in f for f in frames)
    rec = read_recording(tmp_path / "0001.jsonl")
    assert len(rec.frames) == 5 and rec.print_id == "0001" and rec.file == "cube.gcode"


async def test_restart_appends_with_the_statistics_it_starts_from(tmp_path: Path) -> None:
    session = new_session()
    recorder = Recorder(config(tmp_path), session, "mk4")
    feed(recorder, session, 4)
    await recorder.close()
    # a new daemon: the session as saved, a new recorder
    again = WatchSession.from_dict(SessionParams(), session.to_dict())
    again.on_print_state("printing", T0 + 100)
    recorder = Recorder(config(tmp_path), again, "mk4")
    feed(recorder, again, 3)
    await recorder.close()
    lines = records(tmp_path / "0001.jsonl")
    assert [line.get("type") for line in lines] == \
        ["header", None, None, None, None, "restart", None, None, None]
    assert lines[5]["stats"] == lines[4]["stats"]
    assert [f["stats"]["prediction_num"] for f in lines if "type" not in f] == list(range(1, 8))


async def test_a_new_print_starts_a_new_file_from_the_lifetime_baseline(tmp_path: Path) -> None:
    session = new_session("a")
    recorder = Recorder(config(tmp_path), session, "mk4")
    feed(recorder, session, 3, p=0.5)
    lifetime = session.stats.to_dict()
    session.end_print()
    session.begin_print("b")
    feed(recorder, session, 2)
    await recorder.close()
    header = records(tmp_path / "b.jsonl")[0]
    assert header["stats"] == {**lifetime, "p": 0.0, "ewm_mean": 0.0, "rolling_mean_short": 0.0,
                               "prediction_num": 0}


async def test_resume_and_settings_changes_are_written_before_the_next_frame(
        tmp_path: Path) -> None:
    session = new_session()
    recorder = Recorder(config(tmp_path), session, "mk4")
    feed(recorder, session, 2)
    session.on_print_state("paused", T0 + 25)
    session.on_print_state("printing", T0 + 26)
    session.params = SessionParams(resume_cooldown=5.0)
    feed(recorder, session, 1)
    await recorder.close()
    kinds = [line.get("type") for line in records(tmp_path / "0001.jsonl")]
    assert kinds == ["header", None, None, "settings", "resume", None]
    rec = read_recording(tmp_path / "0001.jsonl")
    assert rec.frames[2].resumed_at == T0 + 26
    assert rec.frames[2].params is not None and rec.frames[2].params["resume_cooldown"] == 5.0


async def test_frames_keep_their_jpeg_when_asked(tmp_path: Path) -> None:
    session = new_session()
    recorder = Recorder(config(tmp_path, frames=True), session, "mk4")
    feed(recorder, session, 3, jpeg=b"\xff\xd8jpeg\xff\xd9")
    await recorder.close()
    names = sorted(p.name for p in (tmp_path / "0001.frames").iterdir())
    assert names == ["000001.jpg", "000002.jpg", "000003.jpg"]


async def test_retention_by_count_deletes_the_oldest(tmp_path: Path) -> None:
    for i, name in enumerate(["old1", "old2", "old3", "old4"]):
        old_recording(tmp_path, name, T0 - 10_000 + i * 100, frames=500 if i == 0 else 0)
    session = new_session("new")
    recorder = Recorder(config(tmp_path, max_prints=3), session, "mk4")
    feed(recorder, session, 2)
    await recorder.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.jsonl", "old3.jsonl",
                                                           "old4.jsonl"]


async def test_retention_by_size_deletes_the_oldest_first(tmp_path: Path) -> None:
    old_recording(tmp_path, "old1", T0 - 3000, size=4000, frames=4000)
    old_recording(tmp_path, "old2", T0 - 2000, size=4000)
    old_recording(tmp_path, "old3", T0 - 1000, size=4000)
    session = new_session("new")
    recorder = Recorder(config(tmp_path, max_size=12_000), session, "mk4")
    feed(recorder, session, 5)
    await recorder.close()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["new.jsonl", "old2.jsonl", "old3.jsonl"]
    total = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert total <= 12_000
    # and it keeps holding while the print grows
    recorder = Recorder(config(tmp_path, max_size=12_000), session, "mk4")
    feed(recorder, session, 20)
    await recorder.close()
    assert "old2.jsonl" not in {p.name for p in tmp_path.iterdir()}
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= 12_000


async def test_a_print_too_big_alone_stops_being_recorded_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="failwatch.record")
    session = new_session()
    recorder = Recorder(config(tmp_path, frames=True, max_size=5000), session, "mk4")
    feed(recorder, session, 10, jpeg=b"j" * 1000)
    await recorder.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "alone reached [record] max_size" in warnings[0].getMessage()
    assert len(read_recording(tmp_path / "0001.jsonl").frames) < 10


async def test_an_unwritable_folder_is_logged_once_and_recording_resumes_later(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="failwatch.record")
    folder = tmp_path / "rec"
    folder.write_text("not a folder")  # tests run as root: chmod would not stop the writes
    session = new_session("a")
    recorder = Recorder(config(folder), session, "mk4")
    feed(recorder, session, 3)
    session.end_print()
    session.begin_print("b")
    feed(recorder, session, 3)
    recorder.flush()
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1
    assert str(folder) in errors[0].getMessage() and "recording paused" in errors[0].getMessage()
    # the folder is fixed: the next print is recorded again
    folder.unlink()
    session.end_print()
    session.begin_print("c")
    feed(recorder, session, 2)
    await recorder.close()
    assert "writing to" in caplog.text and (folder / "c.jsonl").exists()
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1


def test_record_section_defaults_and_bounds() -> None:
    base = "[predictor]\nserial_no: S\naccess_token: tok-123\n"
    cfg = parse_config(base)
    assert cfg.record == RecordConfig()
    assert cfg.record.enabled is False and cfg.record.path.endswith(
        "printer_data/failwatch/recordings")
    cfg = parse_config(base + "[record]\nenabled: yes\nframes: on\nmax_prints: 3\n"
                       "max_size: 1.5\npath: /tmp/rec\n")
    assert cfg.record == RecordConfig(True, "/tmp/rec", True, 3, round(1.5 * 1024 * 1024))
    with pytest.raises(Exception, match=r"\[record\] max_prints: must be an integer >= 1"):
        parse_config(base + "[record]\nmax_prints: 0\n")


def test_importing_the_daemon_loads_neither_numpy_nor_matplotlib() -> None:
    code = ("import sys, failwatch_moonraker.daemon, failwatch_moonraker.cli as c; "
            "c.build_parser(); "
            "print(sorted(m for m in ('numpy', 'matplotlib', 'yaml') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"
