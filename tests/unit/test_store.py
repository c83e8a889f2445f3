"""The state file: atomic writes, damaged files set aside, never lost silently."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from failwatch_moonraker.store import StateStore


def test_round_trip_creates_the_folder(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "sub" / "state.json")
    store.save({"session": {"print_id": "00000A"}})
    assert store.load()["session"] == {"print_id": "00000A"}
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["state.json"]  # no temp left


def test_missing_file_is_a_fresh_start(tmp_path: Path) -> None:
    assert StateStore(tmp_path / "none.json").load() == {}


def test_damaged_file_is_kept_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"session": {"stats"')
    with caplog.at_level(logging.WARNING):
        assert StateStore(path).load() == {}
    kept = list(tmp_path.glob("state.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_text() == '{"session": {"stats"'
    assert "is damaged" in caplog.text and f"kept as {kept[0]}" in caplog.text
    assert "reset all statistics" in caplog.text


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = StateStore(path)
    store.save({"n": 1})
    with pytest.raises(TypeError):
        store.save({"n": object()})  # not JSON-serialisable: fails before touching the file
    assert json.loads(path.read_text())["n"] == 1
