"""install.sh as a user reads it: the config's mode, the dry run's words, the unit's stop.

Uses the fake host of test_install.py (a fake HOME, a systemd prefix, a systemctl stub).
"""

from __future__ import annotations

import os
import shutil
import subprocess

from tests.integration.test_install import TIMEOUT, Host, host, unit_settings

__all__ = ["host"]  # the fixture


def test_config_is_written_for_its_owner_only_and_says_so(host: Host) -> None:
    data = host.add_moonraker()
    out = host.install("--yes").stdout
    cfg = data / "config/failwatch.cfg"
    assert oct(cfg.stat().st_mode & 0o777) == "0o600"
    assert f"{cfg} is readable by" in out and "only (mode 0600): it holds your tokens" in out


def test_a_kept_config_readable_by_others_gets_a_hint(host: Host) -> None:
    data = host.add_moonraker()
    cfg = data / "config/failwatch.cfg"
    cfg.write_text("[predictor]\nserial_no: S\naccess_token: T\n")
    cfg.chmod(0o644)
    out = host.install("--yes").stdout
    assert oct(cfg.stat().st_mode & 0o777) == "0o644"  # the user's file is not touched
    assert f"other users can read it: chmod 600 {cfg}" in out


def test_dry_run_says_what_it_would_do_not_what_it_did(host: Host) -> None:
    host.add_moonraker()
    before = host.snapshot()
    proc = subprocess.run(  # with pip: the path that used to say "installed"
        ["bash", str(host.repo / "install.sh"), "--prefix", str(host.prefix), "--allow-root",
         "--dry-run", "--yes"],
        env={"HOME": str(host.home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
             "LANG": "C", "SYSTEMCTL": str(host.stub)},
        cwd=host.tmp, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert host.snapshot() == before and host.calls() == []
    assert "installed failwatch-moonraker" not in out
    assert "would run:" in out and "pip install --quiet --editable" in out
    assert "(mode 0600)" in out
    assert ("would then ask you to restart Moonraker for the update manager entry: "
            "systemctl restart moonraker") in out
    assert "would then ask you to restart Klipper (RESTART in the console)" in out
    assert out.rstrip().endswith("failwatch: dry run: nothing was changed")


def test_unit_marks_failwatch_offline_however_it_stops(host: Host) -> None:
    host.add_moonraker()
    host.install("--yes")
    unit_path = host.unit_dir / "failwatch.service"
    s = unit_settings(unit_path.read_text())
    assert s["ExecStopPost"] == [
        f"{host.venv}/bin/python -m failwatch_moonraker $FAILWATCH_ARGS offline"]
    assert s["Environment"] == ["FAILWATCH_NO_GUARDIAN=1"]
    analyze = shutil.which("systemd-analyze")
    if analyze:
        verify = subprocess.run([analyze, "verify", str(unit_path)], capture_output=True,
                                text=True, timeout=TIMEOUT)
        assert verify.returncode == 0, verify.stdout + verify.stderr
