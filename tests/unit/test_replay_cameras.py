"""Recordings of several cameras: recorded per camera, replayed per camera and as the printer.

The print: two cameras, a failure only the second one ("side") sees. Replay must say
that side fired and when, leave front's statistics as its own frames made them, and
reproduce what the daemon decided.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from failwatch_moonraker.cli import main
from failwatch_moonraker.core.policy import Level
from failwatch_moonraker.core.session import SessionParams, WatchSession
from failwatch_moonraker.predictors import Prediction
from failwatch_moonraker.tools.record import Recorder
from failwatch_moonraker.tools.recording import read_recording, write_recording
from failwatch_moonraker.tools.replay import make_settings, replay
from sim.recordings import synthetic_cameras
from tests.unit.test_record import config, records

T0 = 1_750_000_000.0
CAMERAS = ("front", "side")
FAIL_FROM = 60  # side's frame index from which it sees spaghetti


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def two_camera_session(saved: dict[str, Any] | None = None) -> WatchSession:
    """An established printer: each camera with its own lifetime baseline."""
    data = saved or {"cameras": {
        "front": {"stats": {"rolling_mean_long": 0.04, "prediction_num_lifetime": 500}},
        "side": {"stats": {"rolling_mean_long": 0.02, "prediction_num_lifetime": 300}}}}
    session = WatchSession.from_dict(SessionParams(), data, cameras=CAMERAS)
    session.on_print_state("printing", T0)
    session.begin_print("0001")
    return session


def score(camera: str, k: int) -> float:
    if camera == "side" and k >= FAIL_FROM:
        return 1.5
    return 0.02 + 0.01 * (k % 3)


def watch(recorder: Recorder, session: WatchSession, frames: int, start: int = 0,
          jpeg: bytes | None = None) -> list[tuple[str, Level]]:
    """The daemon's loop: every interval each camera's frame, one Recorder.frame each."""
    fired = []
    for k in range(start, start + frames):
        for offset, camera in enumerate(CAMERAS):
            now = T0 + 10.0 * (k + 1) + offset
            p = score(camera, k)
            outcome = session.on_frame(p, now, camera)
            assert outcome is not None and outcome.camera == camera
            if outcome.fire is not None:
                fired.append((camera, outcome.fire))
            recorder.frame(now, Prediction(p, ((p, (1.0, 2.0, 3.0, 4.0)),)), outcome, session,
                           "test", jpeg, {"filename": "cube.gcode",
                                          "total_duration": 10.0 * (k + 1)})
    return fired


async def recorded_print(folder: Path, frames: int = 100) -> Path:
    """The print: side sees spaghetti from its frame 60 on; front never does."""
    session = two_camera_session()
    recorder = Recorder(config(folder, frames=True), session, "mk4")
    fired = watch(recorder, session, frames, jpeg=b"\xff\xd8jpeg\xff\xd9")
    await recorder.close()
    assert ("side", Level.FAILURE) in fired and all(c == "side" for c, _ in fired)
    return folder / "0001.jsonl"


async def test_each_frame_names_its_camera_and_the_header_each_cameras_baseline(
        tmp_path: Path) -> None:
    path = await recorded_print(tmp_path)
    lines = records(path)
    header = lines[0]
    assert "stats" not in header
    assert header["version"] == 2  # a layout older readers do not know
    assert list(header["cameras"]) == ["front", "side"]
    assert header["cameras"]["front"]["stats"]["rolling_mean_long"] == 0.04
    assert header["cameras"]["side"]["stats"]["prediction_num_lifetime"] == 300
    assert header["cameras"]["side"]["stats"]["prediction_num"] == 0
    frames = lines[1:]
    assert [f["camera"] for f in frames[:4]] == ["front", "side", "front", "side"]
    assert {f["seen"] for f in frames[:2 * FAIL_FROM]} == {"ok"}
    # each line's statistics are its own camera's, counting its own frames
    assert [f["stats"]["prediction_num"] for f in frames[:4]] == [1, 1, 2, 2]
    assert frames[-1]["camera"] == "side"
    assert frames[-1]["stats"]["prediction_num_lifetime"] == 400
    assert frames[-2]["stats"]["prediction_num_lifetime"] == 600  # front's
    pause = next(i for i, f in enumerate(frames) if f.get("fire") == "failure")
    assert frames[pause]["camera"] == "side" and frames[pause]["seen"] == "failure"
    after = frames[pause + 1]  # front's next frame: its own verdict, the printer's level
    assert (after["camera"], after["seen"], after["level"]) == ("front", "ok", "failure")
    names = sorted(p.name for p in (tmp_path / "0001.frames").iterdir())
    assert names[:4] == ["000001-front.jpg", "000001-side.jpg", "000002-front.jpg",
                         "000002-side.jpg"] and len(names) == 200
    rec = read_recording(path)
    assert rec.camera_names() == ["front", "side"]
    assert rec.start_stats("side")["rolling_mean_long"] == 0.02
    assert [f.camera for f in rec.frames[:2]] == ["front", "side"]


async def test_replay_says_the_second_camera_fired_and_when(tmp_path: Path) -> None:
    path = await recorded_print(tmp_path)
    code, out, err = run_cli("replay", str(path))
    assert code == 0, err
    assert "  2 cameras: front, side; the printer's level is the worst camera's, its actions " \
        "run once per print" in out
    assert "  200 frames over 0:16:31" in out
    front = out[out.index("Camera front:"):out.index("Camera side:")]
    side = out[out.index("Camera side:"):out.index("Printer (the worst")]
    printer = out[out.index("Printer (the worst"):]
    after = re.match(r"Camera front: 100 frames; long mean 0.0400 over 500 lifetime frames "
                     r"before its first frame, ([\d.]+) after its last frame\n", front)
    assert after is not None and float(after[1]) < 0.04  # only its own quiet frames moved it
    assert "  ok on every frame" in front
    assert "  first failure: none" in front and "on_failure" not in front
    assert side.startswith("Camera side: 100 frames; long mean 0.0200 over 300 lifetime "
                           "frames before its first frame")
    pause = re.search(r"first failure: frame (\d+) of camera side at ([\d.]+) s", side)
    assert pause is not None and int(pause[1]) > FAIL_FROM
    assert "on_failure actions (pause)" in side
    rows = [line.split() for line in printer.splitlines() if "on_failure" in line]
    assert len(rows) == 1 and rows[0][:2] == ["side", pause[1]]  # camera, its frame number
    assert f"first pause:   frame {pause[1]} of camera side at {pause[2]} s" in printer
    assert "levels: identical to what failwatch decided on all 200 recorded frames" in printer


async def test_replay_reproduces_each_cameras_statistics_and_the_first_is_untouched(
        tmp_path: Path) -> None:
    rec = read_recording(await recorded_print(tmp_path))
    result = replay(rec, make_settings(rec.params, {}), follow=True)
    assert result.mismatches == 0
    assert [str(f.fire) if f.fire else None for f in result.frames] == \
        [f.fire for f in rec.frames]
    for mine, theirs in zip(result.frames, rec.frames, strict=True):
        assert theirs.stats is not None and mine.camera == theirs.camera
        assert (mine.n, mine.ewm, mine.short, mine.long) == (
            theirs.stats["prediction_num"], theirs.stats["ewm_mean"],
            theirs.stats["rolling_mean_short"], theirs.stats["rolling_mean_long"])
        assert str(mine.seen) == theirs.seen
    # front's statistics are exactly those of front watching alone: side's failure left
    # them alone
    alone = replay(rec, make_settings(rec.params, {}), camera="front")
    assert [(f.ewm, f.long) for f in result.of("front")] == [(f.ewm, f.long) for f in alone.frames]
    assert {f.seen for f in result.of("front")} == {Level.OK}


async def test_a_restart_mid_print_records_each_cameras_statistics(tmp_path: Path) -> None:
    session = two_camera_session()
    recorder = Recorder(config(tmp_path), session, "mk4")
    watch(recorder, session, 30)
    await recorder.close()
    again = WatchSession.from_dict(SessionParams(), session.to_dict(), cameras=CAMERAS)
    again.on_print_state("printing", T0 + 400)
    recorder = Recorder(config(tmp_path), again, "mk4")
    watch(recorder, again, 70, start=30)
    await recorder.close()
    lines = records(tmp_path / "0001.jsonl")
    restart = next(line for line in lines if line.get("type") == "restart")
    assert restart["cameras"]["side"]["stats"]["prediction_num"] == 30
    assert restart["cameras"]["front"]["stats"] == lines[59]["stats"]  # front's last frame
    rec = read_recording(tmp_path / "0001.jsonl")
    assert rec.restarts == 1
    assert replay(rec, make_settings(rec.params, {}), follow=True).mismatches == 0


async def test_replay_one_camera_alone(tmp_path: Path) -> None:
    path = await recorded_print(tmp_path)
    code, out, err = run_cli("replay", str(path), "--camera", "side")
    assert code == 0, err
    assert "  100 frames over 0:16:30; baseline before the first frame: long mean 0.0200 " \
        "over 300 lifetime frames" in out
    assert "  camera side alone (the recording's cameras: front, side): the level is its own " \
        "verdict" in out
    assert re.search(r"^first failure: frame \d+ at [\d.]+ s", out, re.M)
    assert "levels: identical to this camera's recorded verdicts on all 100 recorded frames" \
        in out
    code, out, err = run_cli("replay", str(path), "--camera", "front")
    assert code == 0, err
    assert "first warning: none\nfirst failure: none\n" in out
    code, out, err = run_cli("replay", str(path), "--camera", "back")
    assert code == 2 and out == ""
    assert err == f"failwatch-moonraker replay: --camera back: no such camera in {path}; its " \
        "cameras: front, side\n"


def test_camera_on_a_single_camera_recording_says_so(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "one.jsonl", synthetic_cameras(1, 40, {"": {}}))
    code, _, err = run_cli("replay", str(path), "--camera", "front")
    assert code == 2
    assert f"--camera front: {path} has one unnamed camera ([camera]); leave --camera out" \
        in err


OLD = """\
{"type":"header","format":"failwatch-recording","version":1,"print_id":"0007","printer":"mk4",\
"file":"cube.gcode","start_time":1000.0,"stats":{"p":0.0,"ewm_mean":0.0,\
"rolling_mean_short":0.0,"rolling_mean_long":0.03,"prediction_num":0,\
"prediction_num_lifetime":7200},"params":{"sensitivity":1.0,"safe_frames":2}}
"""


#: What the replay of this recording printed before recordings had cameras (the same
#: command run on the code of commit 97604db).
BEFORE = """\
Replay of {path}: cube.gcode (print 0007 on mk4)
  30 frames over 0:04:50; baseline before the first frame: long mean 0.0300 over 7200 \
lifetime frames
  settings (as recorded):
    sensitivity=1.0 ewm_span=12 short_window=310 long_window=7200 threshold_low=0.38
    threshold_high=0.78 short_multiple=3.8 escalating_factor=1.75 safe_frames=2
    warning_cooldown=300.0 resume_cooldown=90.0

Level changes and actions:
   frame  time (s)  h:mm:ss  level         p    ewm  short   long warn at fail at  action
      23     230.0  0:03:50  warning   2.000  0.985  0.349  0.031   0.811   1.396  \
on_warning actions
      25     250.0  0:04:10  warning   2.000  1.273  0.476  0.032   0.812   1.397  \
user resumed before this frame
      27     270.0  0:04:30  failure   2.000  1.479  0.585  0.032   0.812   1.397  \


first warning: frame 23 at 230.0 s (0:03:50)
first failure: frame 27 at 270.0 s (0:04:30)
first pause:   none (failure frames fell within resume_cooldown)
levels: differ from what failwatch decided on 8 of 30 frames
"""


def test_an_old_single_camera_recording_replays_exactly_as_before(tmp_path: Path) -> None:
    """A recording written before cameras had names, with a resume: the same report."""
    lines = [OLD.rstrip("\n")]
    for k in range(1, 31):
        if k == 25:
            lines.append('{"type":"resume","t":1248.0}')
        p = 0.02 if k < 20 else 2.0
        lines.append(f'{{"t":{1000.0 + 10 * k},"p":{p},"detections":[],"predictor":"x",'
                     '"level":"ok"}')
    path = tmp_path / "0007.jsonl"
    path.write_text("\n".join(lines) + "\n")
    rec = read_recording(path)
    assert rec.camera_names() == [""] and rec.cameras == {}
    assert {f.camera for f in rec.frames} == {""}
    code, out, err = run_cli("replay", str(path))
    assert code == 0, err
    assert out == BEFORE.format(path=path)


def test_the_plot_has_a_panel_per_camera_and_the_printers_level(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from failwatch_moonraker.tools.plot import figure

    rec = synthetic_cameras(3, 300, {"front": {}, "side": {"failure_frame": 200,
                                                            "level": 1.2}})
    result = replay(rec, make_settings({}, {}))
    fig = figure(result)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "camera front: 300 frames, its own statistics" in texts
    assert "camera side: 300 frames, its own statistics" in texts
    assert [ax.get_ylabel() for ax in fig.axes][-3:] == ["front", "side", "printer"]
    pause = result.first_fire(Level.FAILURE)
    assert pause is not None and pause.camera == "side"
    assert f"pause at {pause.t:.0f} s (side)" in " ".join(t.get_text() for t in fig.texts)
    path = write_recording(tmp_path / "two.jsonl", rec)
    code, out, err = run_cli("replay", str(path), "--plot", str(tmp_path / "two.png"))
    assert code == 0, err
    with Image.open(tmp_path / "two.png") as image:
        assert image.size == (1200, 995)


def test_a_single_camera_recording_keeps_version_1(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "one.jsonl", synthetic_cameras(1, 5, {"": {}}))
    assert records(path)[0]["version"] == 1
    two = write_recording(tmp_path / "two.jsonl", synthetic_cameras(1, 5, {"a": {}, "b": {}}))
    assert records(two)[0]["version"] == 2


@pytest.mark.parametrize("version", ["3", "\"2\"", "0", "true", "1e400"])
def test_a_recording_of_an_unknown_version_is_refused_not_misread(
        tmp_path: Path, version: str) -> None:
    path = tmp_path / "new.jsonl"
    path.write_text(OLD.replace('"version":1', f'"version":{version}'))
    code, out, err = run_cli("replay", str(path))
    assert code == 2 and out == ""
    shown = {"1e400": "inf", "true": "True", "\"2\"": "2"}.get(version, version)
    assert err == (f"failwatch-moonraker replay: {path}: recording format version {shown}; "
                   "this failwatch-moonraker reads versions 1 to 2 (a newer "
                   "failwatch-moonraker wrote it? upgrade to read it)\n")
