"""The ``buffer`` policy (PrintWatch's rule) on hand-made sequences, pure core only."""

from __future__ import annotations

import json

import pytest

from failwatch_moonraker.core.policy import (
    BufferParams,
    Level,
    PolicyParams,
    decide_buffer,
    defective_count,
)
from failwatch_moonraker.core.session import SessionParams, WatchSession

D, C = 0.9, 0.1  # a defective and a clean frame at the default confidence 0.6
TEN = PolicyParams(safe_frames=0, kind="buffer",
                   buffer=BufferParams(confidence=0.6, length=10, percent=60.0,
                                       warning_percent=30.0))


def level(scores: list[float], params: PolicyParams = TEN, frames: int | None = None) -> Level:
    return decide_buffer(scores, len(scores) if frames is None else frames, params)


@pytest.mark.parametrize(
    ("defective", "expected"),
    [
        (10, Level.FAILURE),
        (7, Level.FAILURE),
        (6, Level.FAILURE),  # exactly 60 %: a failure
        (5, Level.WARNING),
        (3, Level.WARNING),  # exactly 30 %: a warning
        (2, Level.OK),
        (0, Level.OK),
    ],
)
def test_share_of_a_full_ring(defective: int, expected: Level) -> None:
    scores = [C] * (10 - defective) + [D] * defective
    assert level(scores) is expected
    assert level(list(reversed(scores))) is expected  # order inside the ring is irrelevant


def test_fewer_than_buffer_length_frames_never_decide() -> None:
    assert level([D] * 9) is Level.OK  # 9 of 9 defective, but the ring is not full
    assert level([D] * 10) is Level.FAILURE


def test_only_the_last_buffer_length_frames_count() -> None:
    old_failure = [D] * 10
    assert level(old_failure + [C] * 5) is Level.WARNING  # 5 of the last 10
    assert level(old_failure + [C] * 8) is Level.OK  # 2 of the last 10
    assert defective_count(old_failure + [C] * 8, TEN.buffer) == 2


def test_a_score_equal_to_the_confidence_is_defective() -> None:
    assert defective_count([0.6, 0.5999], TEN.buffer) == 1


def test_safe_frames_hold_back_every_verdict() -> None:
    params = PolicyParams(safe_frames=30, kind="buffer", buffer=TEN.buffer)
    assert level([D] * 10, params, frames=29) is Level.OK
    assert level([D] * 10, params, frames=30) is Level.FAILURE


def test_defaults_sixteen_frames_sixty_percent() -> None:
    params = PolicyParams(safe_frames=0, kind="buffer")
    assert params.buffer == BufferParams(0.6, 16, 60.0, 30.0)
    assert level([C] * 6 + [D] * 10, params) is Level.FAILURE  # 62.5 %
    assert level([C] * 7 + [D] * 9, params) is Level.WARNING  # 56.25 %
    assert level([C] * 11 + [D] * 5, params) is Level.WARNING  # 31.25 %
    assert level([C] * 12 + [D] * 4, params) is Level.OK  # 25 %
    assert level([D] * 15, params) is Level.OK  # 15 frames: the ring is not full


def test_exactly_sixty_percent_with_a_length_that_divides_evenly() -> None:
    params = PolicyParams(safe_frames=0, kind="buffer",
                          buffer=BufferParams(confidence=0.6, length=5, percent=60.0,
                                              warning_percent=40.0))
    assert level([C, C, D, D, D], params) is Level.FAILURE  # 3/5 = 60 %
    assert level([C, C, C, D, D], params) is Level.WARNING  # 2/5 = 40 %
    assert level([C, C, C, C, D], params) is Level.OK


# -- through the shared per-print state machine -------------------------------------

BUFFER = SessionParams(policy=TEN, resume_cooldown=90.0, warning_cooldown=300.0)


def printing(print_id: str = "job-1", params: SessionParams = BUFFER) -> WatchSession:
    s = WatchSession(params)
    s.on_print_state("printing", 0.0)
    assert s.begin_print(print_id)
    return s


def feed(s: WatchSession, scores: list[float], t0: float = 1.0) -> list[Level | None]:
    fired = []
    for i, p in enumerate(scores):
        out = s.on_frame(p, t0 + i)
        assert out is not None
        fired.append(out.fire)
    return fired


def test_session_fires_failure_once_when_the_ring_fills() -> None:
    s = printing()
    fired = feed(s, [D] * 9)
    assert fired == [None] * 9 and s.level is Level.OK
    assert feed(s, [D], t0=10.0) == [Level.FAILURE]
    assert s.failure_fired
    # still failing: the failure actions ran already for this print
    out = s.on_frame(D, 11.0)
    assert out is not None and out.level is Level.FAILURE and out.fire is None
    assert "already ran" in out.note


def test_session_warning_respects_the_warning_cooldown() -> None:
    s = printing()
    fired = feed(s, [C] * 7 + [D] * 3)  # 30 % at the 10th frame
    assert fired[-1] is Level.WARNING
    assert feed(s, [C], t0=20.0) == [None]  # falls back to ok
    assert feed(s, [D], t0=30.0) == [None]  # warns again within 300 s: held back
    assert feed(s, [D], t0=400.0) == [Level.WARNING]


def test_session_respects_the_resume_cooldown() -> None:
    s = printing()
    feed(s, [C] * 10)
    s.on_print_state("paused", 20.0)
    assert s.on_print_state("printing", 21.0) == "resumed"
    fired = feed(s, [D] * 5, t0=22.0)
    assert fired == [None, None, Level.WARNING, None, None]  # 30 % at the 3rd
    out = s.on_frame(D, 27.0)  # 6 of the last 10, within 90 s of resuming
    assert out is not None and out.level is Level.FAILURE and out.fire is None
    assert "resume_cooldown" in out.note
    out = s.on_frame(D, 200.0)  # the cooldown is over: the pause goes out
    assert out is not None and out.fire is Level.FAILURE


def test_ring_is_per_print() -> None:
    s = printing("job-1")
    feed(s, [D] * 8)
    assert len(s.recent) == 8
    s.on_print_state("complete", 20.0)
    assert len(s.recent) == 0
    s.on_print_state("printing", 30.0)
    assert s.begin_print("job-2")
    assert feed(s, [D] * 2, t0=31.0) == [None, None]  # 2 frames of the new print only
    assert len(s.recent) == 2


def test_restart_mid_print_resumes_the_ring() -> None:
    s = printing("job-1")
    feed(s, [C] * 3 + [D] * 6)  # 9 frames: not full yet
    saved = json.loads(json.dumps(s.to_dict()))  # through the state file
    assert saved["recent"] == [C] * 3 + [D] * 6
    again = WatchSession.from_dict(BUFFER, saved)
    again.on_print_state("printing", 100.0)
    assert not again.begin_print("job-1")  # the same print carries on
    assert list(again.recent) == [C] * 3 + [D] * 6
    out = again.on_frame(C, 101.0)  # the 10th frame: 6 of 10 defective
    assert out is not None and out.fire is Level.FAILURE


def test_restart_keeps_only_buffer_length_frames_and_a_new_print_resets() -> None:
    data = {"print_id": "job-1", "recent": [D] * 25 + ["x", True, None, C]}
    s = WatchSession.from_dict(BUFFER, data)
    assert list(s.recent) == [D] * 9 + [C]  # junk dropped, the last 10 kept
    s.on_print_state("printing", 0.0)
    assert s.begin_print("job-2")
    assert len(s.recent) == 0


def test_obico_policy_keeps_no_ring() -> None:
    s = printing(params=SessionParams(policy=PolicyParams(safe_frames=0)))
    feed(s, [D] * 20)
    assert len(s.recent) == 0
    assert s.to_dict()["recent"] == []


def test_summary_shows_the_ring() -> None:
    s = printing()
    feed(s, [C, D, D])
    assert s.summary().endswith("defective=2/3 (p>=0.6)")
    obico = printing(params=SessionParams(policy=PolicyParams(safe_frames=0)))
    assert "defective" not in obico.summary()
