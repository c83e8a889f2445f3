"""The README quotes the latest ``make bench`` output once, in its figures block."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import pytest

from bench.__main__ import README_BLOCK, write_readme

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_holds_one_bench_run_with_every_section() -> None:
    text = README.read_text(encoding="utf-8")
    blocks = README_BLOCK.findall(text)
    assert len(blocks) == 1
    block = README_BLOCK.search(text)
    assert block is not None
    body = block.group(0)
    for section in "abcdefghi":
        assert re.search(rf"^\({section}\) ", body, re.M), f"section ({section}) missing"
    assert "(bench took" in body and "load average" in body
    # no second copy of the figures (the old hand-made table) anywhere else
    assert not re.search(r"^\| \([a-i]\) ", text, re.M)


def test_write_readme_replaces_only_the_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- bench:begin x -->\nold figures\n<!-- bench:end -->\nrest\n")
    when = datetime.datetime(2026, 12, 2, 16, 0, tzinfo=datetime.timezone.utc)
    write_readme(readme, "(a) CPU per frame: 0.70 ms\n", (0.1, 0.2, 0.3), when)
    text = readme.read_text()
    assert text.startswith("intro\n<!-- bench:begin x -->\nRun 2026-12-02 16:00 UTC on ")
    assert "```text\n(a) CPU per frame: 0.70 ms\n```" in text and "old figures" not in text
    assert text.endswith("<!-- bench:end -->\nrest\n")


def test_write_readme_says_when_the_block_is_missing(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("no block\n")
    with pytest.raises(SystemExit, match="no <!-- bench:begin --> ... <!-- bench:end --> block"):
        write_readme(readme, "x", (0, 0, 0), datetime.datetime.now(datetime.timezone.utc))
