"""replay: the daemon's code over recorded scores, its settings, its report and its plot."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from failwatch_moonraker.cli import main
from failwatch_moonraker.core.policy import Level
from failwatch_moonraker.tools.recording import RecordedFrame, read_recording, write_recording
from failwatch_moonraker.tools.replay import (
    SettingsError,
    make_settings,
    parse_sets,
    replay,
    session_params,
    start_session,
)
from sim.recordings import synthetic_print


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_replay_is_the_sessions_own_decisions() -> None:
    rec = synthetic_print(7, 400, failure_frame=250, level=1.0)
    settings = make_settings({}, {"sensitivity": "1.2"})
    session = start_session(rec, session_params(settings))
    expected = []
    for frame in rec.frames:
        outcome = session.on_frame(frame.p, frame.t)
        assert outcome is not None
        expected.append((outcome.level, outcome.fire, session.stats.ewm_mean))
    result = replay(rec, settings)
    assert [(f.level, f.fire, f.ewm) for f in result.frames] == expected
    assert result.first(Level.FAILURE) is not None
    assert result.frames[0].t == pytest.approx(10.0)  # seconds since the print started


def test_recorded_levels_are_compared(tmp_path: Path) -> None:
    rec = synthetic_print(8, 300, failure_frame=200, level=1.2)
    truth = replay(rec, make_settings({}, {}))
    for frame, decided in zip(rec.frames, truth.frames, strict=True):
        frame.level = str(decided.level)
    path = write_recording(tmp_path / "r.jsonl", rec)
    again = read_recording(path)
    assert replay(again, make_settings({}, {})).mismatches == 0
    assert replay(again, make_settings({}, {"sensitivity": "3"})).mismatches


def test_a_resume_holds_the_pause_back_for_resume_cooldown() -> None:
    rec = synthetic_print(9, 300, failure_frame=150, level=1.5)
    plain = replay(rec, make_settings({}, {}))
    pause = plain.first_fire(Level.FAILURE)
    assert pause is not None
    index = pause.n - 1
    rec.frames[index].resumed_at = rec.frames[index].t - 1.0  # the user resumed just before
    held = replay(rec, make_settings({}, {"resume_cooldown": "60"}))
    later = held.first_fire(Level.FAILURE)
    assert later is not None and later.n > pause.n
    assert rec.frames[later.n - 1].t - rec.frames[index].resumed_at >= 60.0  # type: ignore[operator]


def test_recorded_settings_changes_are_followed_only_when_asked() -> None:
    rec = synthetic_print(10, 300, failure_frame=200, level=0.6)
    rec.params = {"sensitivity": 1.0}
    rec.frames[100].params = {"sensitivity": 3.0}
    followed = replay(rec, make_settings(rec.params, {}), follow=True)
    fixed = replay(rec, make_settings(rec.params, {}))
    assert followed.followed_changes == 1 and fixed.followed_changes == 0
    assert [f.level for f in followed.frames] != [f.level for f in fixed.frames]


def test_settings_are_validated_with_the_allowed_keys_and_ranges() -> None:
    assert parse_sets(["sensitivity=1.2", "ewm-span=8"]) == {"sensitivity": "1.2",
                                                             "ewm_span": "8"}
    with pytest.raises(SettingsError, match="unknown setting 'interval'.*sensitivity \\(0.1 to 5"):
        parse_sets(["interval=5"])
    with pytest.raises(SettingsError, match="expected key=value"):
        parse_sets(["sensitivity"])
    with pytest.raises(SettingsError, match="--set sensitivity: must be a number <= 5"):
        make_settings({}, parse_sets(["sensitivity=9"]))
    with pytest.raises(SettingsError, match="threshold_high: must be >= threshold_low"):
        make_settings({}, {"threshold_low": "0.9"})


def test_cli_replays_a_csv_and_reports_first_warning_and_failure(tmp_path: Path) -> None:
    csv = tmp_path / "scores.csv"
    rows = ["time,p"] + [f"{10 * k},{0.03 if k < 60 else 1.5}" for k in range(100)]
    csv.write_text("\n".join(rows) + "\n")
    code, out, err = run_cli("replay", str(csv), "--set", "safe_frames=10")
    assert code == 0, err
    assert "100 frames" in out and "settings (defaults; --set safe_frames=10)" in out
    assert "first warning: frame" in out and "first failure: frame" in out
    assert read_recording(csv).frames[60] == RecordedFrame(600.0, 1.5)


def test_cli_reports_bad_input_clearly(tmp_path: Path) -> None:
    code, _, err = run_cli("replay", str(tmp_path / "missing.jsonl"))
    assert code == 2 and "no such file" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("time,p\n1,2\nthree,4\n")
    code, _, err = run_cli("replay", str(bad))
    assert code == 2 and "line 3: expected 'time,p'" in err
    good = tmp_path / "ok.csv"
    good.write_text("0,0.1\n10,0.2\n")
    code, _, err = run_cli("replay", str(good), "--set", "long_window=0")
    assert code == 2 and "long_window: must be an integer >= 1" in err


def test_plot_is_a_readable_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    rec = synthetic_print(11, 500, failure_frame=300, level=1.0)
    path = write_recording(tmp_path / "print.jsonl", rec)
    out = tmp_path / "plot.png"
    code, text, err = run_cli("replay", str(path), "--plot", str(out))
    assert code == 0, err
    assert f"plot: {out}" in text
    with Image.open(out) as image:
        assert image.size == (1200, 675)
        stddev = ImageStat.Stat(image.convert("L")).stddev[0]
    assert stddev > 10  # not a blank canvas
