"""Huge config values give the clear file/section/option error (issue 10 item 16)."""

from __future__ import annotations

from pathlib import Path

import pytest

from failwatch_moonraker.config import ConfigError, load_config
from sim.cli_run import run_cli

BASE = ("[moonraker]\nurl: ws://127.0.0.1:9/websocket\n"
        "[predictor]\nserial_no: X\naccess_token: SECRETTOKEN\n")


async def test_a_4300_digit_integer_is_a_config_error_not_a_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "failwatch.cfg"
    cfg.write_text(BASE + "[detection]\nlong_window: 1" + "0" * 4400 + "\n")
    code, out, err = await run_cli("--config", str(cfg))
    assert code == 2
    assert f"{cfg}: [detection] long_window: must be an integer <= 1000000000000000, got " \
        "'1000" in err
    assert "Traceback" not in err and "SECRETTOKEN" not in err + out


@pytest.mark.parametrize(("option", "value", "message"), [
    ("long_window", "9" * 40, "must be an integer <= 1000000000000000"),
    ("safe_frames", "-" + "9" * 5000, "must be an integer >= 0"),
    ("short_window", "+" + "1" * 5000, "must be an integer <= 1000000000000000"),
    ("ewm_span", "0" * 5000 + "12", ""),
    ("interval", "1" * 5000, "must be a number >= 0.1 and <= 3600"),
    ("sensitivity", "1e99999", "must be a number >= 0.1 and <= 5"),
])
def test_huge_numbers_in_every_getter(tmp_path: Path, option: str, value: str,
                                      message: str) -> None:
    cfg = tmp_path / "failwatch.cfg"
    cfg.write_text(BASE + f"[detection]\n{option}: {value}\n")
    if not message:  # leading zeros are still a small number
        assert load_config(cfg).detection.ewm_span == 12
        return
    with pytest.raises(ConfigError) as caught:
        load_config(cfg)
    assert any(m.startswith(f"{cfg}: [detection] {option}: {message}")
               for m in caught.value.problems), caught.value.problems
