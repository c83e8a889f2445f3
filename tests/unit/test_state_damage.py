"""A damaged state file never stops the daemon and is never lost (issue 10 items 9, 11).

Not UTF-8, nested too deep, valid JSON of the wrong types, NaN statistics: the
daemon starts, the damaged file is kept as ``<name>.corrupt-<UTC time>`` (never
over an earlier kept copy), the log says which copy was kept and what was reset,
and nothing non-finite is ever written back.
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Any

import pytest

from failwatch_moonraker.config import load_config
from failwatch_moonraker.daemon import Daemon
from failwatch_moonraker.store import StateStore
from sim.daemon_config import write_daemon_config


def daemon_for(tmp_path: Path) -> Daemon:
    cfg = write_daemon_config(tmp_path / "failwatch.cfg", moonraker_url="ws://127.0.0.1:9/websocket",
                              predictor_url="http://127.0.0.1:9/p", data_dir=tmp_path,
                              serial_no="S", access_token="T")
    return Daemon(load_config(cfg))


def state_path(tmp_path: Path) -> Path:
    path = tmp_path / "failwatch" / "state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def kept(tmp_path: Path) -> list[Path]:
    return sorted(state_path(tmp_path).parent.glob("state.json.corrupt-*"))


GOOD_STATS = {"p": 0.1, "ewm_mean": 0.05, "rolling_mean_short": 0.04,
              "rolling_mean_long": 0.03, "prediction_num": 12, "prediction_num_lifetime": 900}

UNREADABLE = [
    (b"\xff\xfe{\x00", "not UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deep"),
    (b'{"session": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deep"),
    (b'{"session": {"stats"', "Expecting"),
    (b"[1, 2]", "not a JSON object"),
]


@pytest.mark.parametrize(("content", "reason"), UNREADABLE)
def test_an_unreadable_file_is_kept_and_the_daemon_starts(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, reason: str) -> None:
    state_path(tmp_path).write_bytes(content)
    with caplog.at_level(logging.WARNING):
        daemon = daemon_for(tmp_path)
    assert daemon.session.stats.prediction_num_lifetime == 0
    [copy] = kept(tmp_path)
    assert copy.read_bytes() == content
    assert re.fullmatch(r"state\.json\.corrupt-\d{8}T\d{6}Z", copy.name)
    assert reason in caplog.text and f"kept as {copy}" in caplog.text
    assert "reset all statistics and settings" in caplog.text


WRONG: list[tuple[dict[str, Any], str]] = [
    ({"session": {"stats": {**GOOD_STATS, "rolling_mean_long": "0.03"}}},
     "stats.rolling_mean_long"),
    ({"session": {"stats": {**GOOD_STATS, "ewm_mean": math.nan}}}, "stats.ewm_mean"),
    ({"session": {"stats": {**GOOD_STATS, "rolling_mean_long": -1e6}}},
     "stats.rolling_mean_long"),
    ({"session": {"stats": {**GOOD_STATS, "p": math.inf}}}, "stats.p"),
    ({"session": {"stats": {**GOOD_STATS, "prediction_num_lifetime": -4}}},
     "stats.prediction_num_lifetime"),
    ({"session": {"stats": [1, 2]}}, "stats (not an object)"),
    ({"session": "yes"}, "session (not an object)"),
    ({"session": {"stats": GOOD_STATS, "print_id": "a", "recent": [0.1, math.nan]}},
     "recent"),
    ({"session": {"stats": GOOD_STATS, "resumed_at": math.inf}}, "resumed_at"),
    ({"session": {"stats": GOOD_STATS}, "settings": {"sensitivity": 99}},
     "settings.sensitivity"),
]


@pytest.mark.parametrize(("data", "field"), WRONG)
def test_wrong_values_are_reset_named_and_the_file_kept(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, data: dict[str, Any],
        field: str) -> None:
    text = json.dumps(data)  # json writes NaN/Infinity, as a broken writer would
    state_path(tmp_path).write_text(text)
    with caplog.at_level(logging.WARNING):
        daemon = daemon_for(tmp_path)
    stats = daemon.session.stats
    assert all(math.isfinite(v) and v >= 0 for v in
               (stats.p, stats.ewm_mean, stats.rolling_mean_short, stats.rolling_mean_long))
    [copy] = kept(tmp_path)
    assert copy.read_text() == text
    assert f"kept as {copy}" in caplog.text and f"reset {field}" in caplog.text
    if field.startswith("stats.") and field != "stats.prediction_num_lifetime":
        assert stats.prediction_num_lifetime == 900  # the valid values are kept


def test_a_good_file_is_not_kept_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state_path(tmp_path).write_text(json.dumps({"session": {"stats": GOOD_STATS}}))
    with caplog.at_level(logging.WARNING):
        daemon = daemon_for(tmp_path)
    assert daemon.session.stats.prediction_num_lifetime == 900
    assert kept(tmp_path) == [] and "damaged" not in caplog.text


def test_a_second_damage_never_overwrites_the_first_kept_copy(tmp_path: Path) -> None:
    path = state_path(tmp_path)
    path.write_bytes(b"\xff first")
    StateStore(path).load()
    path.write_bytes(b"\xff second")
    StateStore(path).load()
    path.write_text('{"session": {"stats": {"p": NaN}}}')
    daemon_for(tmp_path)
    contents = sorted(p.read_bytes() for p in kept(tmp_path))
    assert contents == sorted([b"\xff first", b"\xff second",
                               b'{"session": {"stats": {"p": NaN}}}'])


def test_nothing_non_finite_is_ever_written(tmp_path: Path) -> None:
    path = state_path(tmp_path)
    store = StateStore(path)
    store.save({"session": {"stats": GOOD_STATS}})
    with pytest.raises(ValueError):
        store.save({"session": {"stats": {**GOOD_STATS, "p": math.nan}}})
    assert json.loads(path.read_text())["session"]["stats"] == GOOD_STATS
    assert list(path.parent.glob("*.tmp")) == []


async def test_the_daemon_saves_valid_state_after_a_reset(tmp_path: Path) -> None:
    state_path(tmp_path).write_bytes(b"\xff\xfe")
    daemon = daemon_for(tmp_path)
    await daemon.save(force=True)

    def refuse(name: str) -> Any:
        raise AssertionError(name)
    saved = json.loads(state_path(tmp_path).read_text(), parse_constant=refuse)
    assert saved["session"]["stats"]["prediction_num_lifetime"] == 0
    assert len(kept(tmp_path)) == 1


def test_temporary_files_left_by_a_kill_are_removed_at_start(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = state_path(tmp_path)
    path.write_text(json.dumps({"session": {"stats": GOOD_STATS}}))
    (path.parent / "state.json.abc123.tmp").write_text('{"half')
    (path.parent / "state.json.zz.tmp").write_text("")
    (path.parent / "other.tmp").write_text("not ours")
    snaps = tmp_path / "logs" / "failwatch"
    snaps.mkdir(parents=True)
    (snaps / "20260101-120000.123-failure-0001.tmp").write_bytes(b"\xff\xd8")
    (snaps / "20260101-120000.123-failure-0001.jpg").write_bytes(b"\xff\xd8")
    (snaps / "notes.tmp").write_text("not ours")
    with caplog.at_level(logging.INFO):
        cfg = write_daemon_config(tmp_path / "failwatch.cfg",
                                  moonraker_url="ws://127.0.0.1:9/websocket",
                                  predictor_url="http://127.0.0.1:9/p", data_dir=tmp_path,
                                  serial_no="S", access_token="T",
                                  snapshots={"path": str(snaps)})
        daemon = Daemon(load_config(cfg))
    assert daemon.session.stats.prediction_num_lifetime == 900
    assert sorted(p.name for p in path.parent.iterdir()) == ["other.tmp", "state.json"]
    assert sorted(p.name for p in snaps.iterdir()) == [
        "20260101-120000.123-failure-0001.jpg", "notes.tmp"]
    assert "removed 2 temporary file(s) left by an interrupted save" in caplog.text
    assert "removed 1 temporary file(s)" in caplog.text
