"""What a new user reads before the first print: which predictor, where credentials come from."""

from __future__ import annotations

import re
from pathlib import Path

from failwatch_moonraker.config import load_config
from failwatch_moonraker.placeholders import placeholder_problems

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
EXAMPLE = ROOT / "config" / "failwatch.cfg.example"


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n#", start + len(heading))
    return text[start:end if end > 0 else None]


def test_readme_says_which_predictor_fits_whom() -> None:
    table = _section(README, "### Which predictor?")
    rows = {
        "no server and no account": ("`pinozcam`", "`onnx`", "none"),
        "your own Obico server": ("`obico_ml_api`", "ML_API_TOKEN"),
        "an Obico/Elegoo partner device": ("`obico` (the default)", "`serial_no`",
                                           "`access_token`"),
        "a PrintWatch subscription": ("`printwatch`", "`api_key`"),
    }
    for who, words in rows.items():
        row = next(line for line in table.splitlines() if line.startswith(f"| {who} |"))
        for word in words:
            assert word in row, (who, word)
    assert "**Elegoo's partner endpoint**" in table


def test_example_config_says_where_credentials_come_from() -> None:
    text = EXAMPLE.read_text()
    predictor = text[text.index("[predictor]"):text.index("serial_no: YOUR-PRINTER-SERIAL")]
    for words in ("no server and no account", "pinozcam or onnx", "your own Obico server",
                  "ML_API_TOKEN", "an Obico/Elegoo partner", "Elegoo's partner endpoint",
                  "a PrintWatch subscription", "placeholders"):
        assert words in predictor, words
    assert re.search(r"mode 0600", text[:1000])


def test_the_placeholder_message_points_at_the_readme_section(tmp_path: Path) -> None:
    cfg = tmp_path / "failwatch.cfg"
    cfg.write_text(EXAMPLE.read_text())
    (problem,) = placeholder_problems(load_config(cfg))
    assert 'see the README, "Which predictor?"' in problem
    assert "### Which predictor?" in README
