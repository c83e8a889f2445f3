"""Several cameras: each keeps its own statistics, the printer's level is the worst camera's."""

from __future__ import annotations

import json

import pytest

from failwatch_moonraker.core.policy import Level, PolicyParams
from failwatch_moonraker.core.session import SessionParams, WatchSession

FAST = SessionParams(policy=PolicyParams(safe_frames=0), resume_cooldown=90.0,
                     warning_cooldown=300.0)
BAD = 10.0


def two_cameras() -> WatchSession:
    s = WatchSession(FAST, cameras=("front", "side"))
    s.on_print_state("printing", 0.0)
    assert s.begin_print("000001")
    for i in range(10):
        for cam in ("front", "side"):
            out = s.on_frame(0.0, float(i), cam)
            assert out is not None and out.level is Level.OK
    return s


def test_a_failure_seen_by_the_second_camera_fires_once_and_names_it() -> None:
    s = two_cameras()
    before = s.track("front").stats.to_dict()
    fired = []
    for i in range(20):
        s.on_frame(0.0, 100.0 + i, "front")
        out = s.on_frame(BAD, 100.0 + i, "side")
        assert out is not None
        if out.fire is not None:
            fired.append((out.fire, out.camera))
    assert fired[0] == (Level.WARNING, "side") or fired[0] == (Level.FAILURE, "side")
    assert [f for f in fired if f[0] is Level.FAILURE] == [(Level.FAILURE, "side")]
    assert s.level is Level.FAILURE and s.lead.name == "side"
    front = s.track("front").stats
    assert front.rolling_mean_long == pytest.approx(before["rolling_mean_long"])
    assert front.prediction_num == before["prediction_num"] + 20
    assert s.track("front").level is Level.OK


def test_a_quiet_camera_frame_does_not_lower_the_printer_level() -> None:
    s = two_cameras()
    for i in range(20):
        s.on_frame(BAD, 100.0 + i, "side")
    out = s.on_frame(0.0, 200.0, "front")
    assert out is not None and out.seen is Level.OK and out.level is Level.FAILURE
    assert out.fire is None


def test_per_camera_statistics_survive_a_restart() -> None:
    s = two_cameras()
    for i in range(5):
        s.on_frame(0.5, 50.0 + i, "side")
    data = json.loads(json.dumps(s.to_dict()))
    assert set(data["cameras"]) == {"front", "side"} and "stats" not in data
    problems: list[str] = []
    back = WatchSession.from_dict(FAST, data, problems, cameras=("front", "side"))
    assert problems == []
    for cam in ("front", "side"):
        assert back.track(cam).stats.to_dict() == s.track(cam).stats.to_dict()


def test_the_single_camera_layout_is_unchanged_and_carries_on_as_the_first_camera() -> None:
    single = WatchSession(FAST)
    single.on_print_state("printing", 0.0)
    single.begin_print("000001")
    for i in range(7):
        single.on_frame(0.1, float(i))
    data = single.to_dict()
    assert "cameras" not in data and data["stats"]["prediction_num"] == 7
    named = WatchSession.from_dict(FAST, data, cameras=("front", "side"))
    assert named.track("front").stats.prediction_num == 7
    assert named.track("side").stats.prediction_num_lifetime == 0


def test_damaged_camera_entries_are_named_and_reset() -> None:
    data = {"print_id": "a", "cameras": {"front": {"stats": [1]}, "side": "x"}}
    problems: list[str] = []
    s = WatchSession.from_dict(FAST, data, problems, cameras=("front", "side"))
    assert problems == ["cameras.front.stats (not an object)", "cameras.side (not an object)"]
    assert s.track("side").stats.prediction_num == 0


def test_an_unknown_camera_is_refused() -> None:
    s = two_cameras()
    with pytest.raises(ValueError, match="no camera named 'top'"):
        s.on_frame(0.0, 1.0, "top")
