"""The per-print state machine, driven with plain vectors and explicit times."""

from __future__ import annotations

from failwatch_moonraker.core.policy import Level, PolicyParams
from failwatch_moonraker.core.session import SessionParams, WatchSession

# No warm-up and a quick EWM so a few frames decide; cooldowns in seconds.
FAST = SessionParams(policy=PolicyParams(safe_frames=0), resume_cooldown=90.0,
                     warning_cooldown=300.0)


# A failure from the first frame raises the short mean as fast as the EWM and is
# suppressed by design (obico.md 1.5), so the failing frames follow quiet ones.
BAD = 10.0


def quiet(s: WatchSession, frames: int = 10) -> None:
    for _ in range(frames):
        out = s.on_frame(0.0, 0.0)
        assert out is not None and out.level is Level.OK


def printing(print_id: str = "000001", params: SessionParams = FAST) -> WatchSession:
    s = WatchSession(params)
    s.on_print_state("printing", 0.0)
    assert s.begin_print(print_id)
    quiet(s)
    return s


def test_no_frames_count_unless_printing_with_a_known_print() -> None:
    s = WatchSession(FAST)
    assert s.on_frame(5.0, 1.0) is None  # state unknown
    s.on_print_state("printing", 1.0)
    assert s.on_frame(5.0, 2.0) is None  # print id not known yet
    s.begin_print("000001")
    assert s.on_frame(0.0, 3.0) is not None
    s.on_print_state("paused", 4.0)
    assert s.on_frame(5.0, 5.0) is None  # paused prints are not analysed
    assert s.stats.prediction_num == 1


def test_failure_fires_once_per_print_then_only_warns() -> None:
    s = printing()
    outcomes = [s.on_frame(BAD, float(t)) for t in range(1, 4)]
    assert outcomes[0] is not None and outcomes[0].fire is Level.FAILURE
    # still failing, but failure actions already ran; a warning was just given -> nothing
    assert outcomes[1] is not None and outcomes[1].level is Level.FAILURE
    assert outcomes[1].fire is None
    assert "already ran" in outcomes[1].note
    # after warning_cooldown a reminder warning goes out
    later = s.on_frame(BAD, 400.0)
    assert later is not None and later.fire is Level.WARNING


def test_warning_at_most_once_per_cooldown() -> None:
    s = printing(params=SessionParams(policy=PolicyParams(safe_frames=0, escalating_factor=100)))
    fired = []
    for t in (1, 2, 100, 299, 302, 303):
        out = s.on_frame(BAD, float(t))
        assert out is not None and out.level is Level.WARNING
        fired.append(out.fire)
    assert fired == [Level.WARNING, None, None, None, Level.WARNING, None]


def test_no_auto_pause_within_resume_cooldown_after_the_user_resumes() -> None:
    s = printing()
    s.on_print_state("paused", 10.0)  # the user paused by hand
    assert s.on_print_state("printing", 20.0) == "resumed"
    out = s.on_frame(BAD, 50.0)
    assert out is not None and out.level is Level.FAILURE
    assert out.fire is Level.WARNING  # downgraded: the user just looked at it
    assert "resume_cooldown" in out.note
    out = s.on_frame(BAD, 111.0)  # 91 s after the resume
    assert out is not None and out.fire is Level.FAILURE


def test_timelapse_parking_is_not_a_user_resume() -> None:
    s = printing()
    s.on_print_state("paused", 10.0, parked=True)
    assert s.on_print_state("printing", 11.0) is None
    assert not s.in_resume_cooldown(12.0)
    out = s.on_frame(BAD, 12.0)
    assert out is not None and out.fire is Level.FAILURE


def test_new_print_resets_per_print_state_and_keeps_the_baseline() -> None:
    s = printing("000001")
    s.on_frame(BAD, 1.0)
    assert s.failure_fired
    lifetime = s.stats.prediction_num_lifetime
    assert s.on_print_state("cancelled", 2.0) == "ended"
    assert s.print_id is None and not s.failure_fired and s.stats.prediction_num == 0
    s.on_print_state("printing", 3.0)
    assert s.begin_print("000002")
    assert s.stats.prediction_num_lifetime == lifetime
    quiet(s)
    out = s.on_frame(BAD, 4.0)
    assert out is not None and out.fire is Level.FAILURE  # once per print, new print


def test_restart_mid_print_resumes_the_print() -> None:
    s = printing("000007")
    for t in range(5):
        s.on_frame(0.1, float(t))
    saved = s.to_dict()
    again = WatchSession.from_dict(FAST, saved)
    again.on_print_state("printing", 10.0)
    assert not again.begin_print("000007")  # same job: carry on
    assert again.stats == s.stats
    assert again.begin_print("000008")  # a different job: fresh print stats
    assert again.stats.prediction_num == 0
    assert again.stats.prediction_num_lifetime == 15


def test_failure_fired_survives_a_restart() -> None:
    s = printing("000003")
    s.on_frame(BAD, 1.0)
    again = WatchSession.from_dict(FAST, s.to_dict())
    again.on_print_state("printing", 2.0)
    again.begin_print("000003")
    out = again.on_frame(BAD, 3.0)
    assert out is not None and out.level is Level.FAILURE and out.fire is not Level.FAILURE


def test_safe_frames_hold_fire_during_warm_up() -> None:
    s = WatchSession(SessionParams(policy=PolicyParams(safe_frames=13)))
    s.on_print_state("printing", 0.0)
    s.begin_print("000001")
    quiet(s)  # frames 1-10
    levels = [s.on_frame(BAD, float(t)) for t in range(1, 4)]  # frames 11, 12, 13
    assert [o.level if o else None for o in levels] == [Level.OK, Level.OK, Level.FAILURE]


def test_level_change_is_reported() -> None:
    s = printing()
    a = s.on_frame(0.0, 1.0)
    b = s.on_frame(0.0, 2.0)
    assert a is not None and b is not None and not a.changed and not b.changed
    c = s.on_frame(BAD, 3.0)
    assert c is not None and c.changed


def test_ignore_print_stops_watching_until_the_print_ends() -> None:
    s = printing("000001")
    assert s.ignore_print()
    assert s.on_frame(BAD, 1.0) is None
    again = WatchSession.from_dict(FAST, s.to_dict())  # survives a restart
    again.on_print_state("printing", 2.0)
    again.begin_print("000001")
    assert again.on_frame(BAD, 3.0) is None
    again.on_print_state("complete", 4.0)
    again.on_print_state("printing", 5.0)
    assert again.begin_print("000002")
    assert again.on_frame(0.0, 6.0) is not None  # next print is watched


def test_ignore_print_without_a_print_is_refused() -> None:
    assert not WatchSession(FAST).ignore_print()
