"""``install.sh --local pinozcam``: the engine's extra, a new config that uses it, an old
config left alone. Same fake host as test_install.py (systemctl stubbed, --no-pip)."""

from __future__ import annotations

import os
import subprocess

from failwatch_moonraker.config import parse_config
from tests.integration.test_install import TIMEOUT, Host, host  # noqa: F401  (fixture)


def test_new_config_uses_the_local_backend(host: Host) -> None:  # noqa: F811
    data = host.add_moonraker()
    out = host.install("--local", "pinozcam").stdout
    cfg = (data / "config" / "failwatch.cfg").read_text()
    config = parse_config(cfg)  # valid as written, without credentials
    assert config.predictor.backend == "pinozcam"
    assert "\nbackend: pinozcam\n" in cfg
    # The example's placeholder credentials are commented out: nothing to fill in.
    assert config.predictor.serial_no == "" and config.predictor.access_token == ""
    assert "\n#serial_no:\n" in cfg and "\n#access_token:\n" in cfg
    assert "uses backend pinozcam: the model runs on this host, no credentials needed" in out
    assert "PiNozCam's failure detector" in out and "AGPL-3.0" in out
    assert "not part of failwatch" in out
    assert "failwatch-moonraker detect --config" in out
    assert "put your predictor credentials" not in out
    assert "the pinozcam engine is not installed either" in out  # --no-pip


def test_existing_config_is_never_edited(host: Host) -> None:  # noqa: F811
    data = host.add_moonraker()
    cfg = data / "config" / "failwatch.cfg"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    mine = "[predictor]\nserial_no: MINE\naccess_token: MINE-TOKEN\n"
    cfg.write_text(mine)
    out = host.install("--local", "pinozcam").stdout
    assert cfg.read_text() == mine
    assert "it is not changed: to use pinozcam, set this in its [predictor] section:" in out
    assert "failwatch:   backend: pinozcam" in out
    cfg.write_text("[predictor]\nbackend: pinozcam\n")
    out = host.install("--local", "pinozcam").stdout
    assert "it already uses backend pinozcam" in out


def test_pip_installs_the_extra(host: Host) -> None:  # noqa: F811
    host.add_moonraker()
    # Without --no-pip, in a dry run: the pip command is shown, not run.
    proc = subprocess.run(
        ["bash", str(host.repo / "install.sh"), "--prefix", str(host.prefix), "--allow-root",
         "--dry-run", "--local", "pinozcam"],
        env={"HOME": str(host.home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
             "LANG": "C", "SYSTEMCTL": str(host.stub)},
        cwd=host.tmp, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"pip install --quiet --editable {host.repo}\\[pinozcam\\]" in proc.stdout
    assert not host.venv.exists()


def test_unknown_engine_is_refused(host: Host) -> None:  # noqa: F811
    host.add_moonraker()
    proc = host.install("--local", "tflite", expect_rc=2)
    assert "--local takes: pinozcam, obico; got 'tflite'" in proc.stderr
