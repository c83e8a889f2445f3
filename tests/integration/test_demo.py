"""``make demo-remote`` as a user sees it: it pauses, explains p > 1, and its last line is true."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("require_moonraker")
ROOT = Path(__file__).resolve().parents[2]


def run_demo(*extra: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "sim.demo", "--remote", "--clean-frames", "12",
         "--interval", "0.2", "--timeout", "60", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout.splitlines()


def test_the_demo_pauses_explains_p_and_ends_on_a_true_line() -> None:
    lines = run_demo()
    text = "\n".join(lines)
    assert "failwatch paused the failing print." in text
    assert "p is the sum of the confidences of every box" in text
    last = lines[-1]
    assert "removed (python -m sim.demo --keep keeps them)" in last
    for path in re.findall(r"/\S+", last):  # a path named last must still be there
        assert Path(path.rstrip(".,;)")).exists(), last


def test_keep_keeps_what_it_names(tmp_path: Path) -> None:
    last = run_demo("--keep")[-1]
    folder = Path(re.findall(r"kept in (\S+)", last)[0])
    try:
        assert (folder / "failwatch.log").is_file() and (folder / "failwatch.cfg").is_file()
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
