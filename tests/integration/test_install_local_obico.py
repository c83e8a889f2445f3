"""install.sh --local obico: Obico's model on this host, in the fake host of test_install.

``--no-pip`` (as in every installer test) installs nothing and fetches nothing;
what is checked is what the user reads and which files change. The download
itself is ``failwatch-moonraker model fetch``, tested against a local server in
test_model_fetch.
"""

from __future__ import annotations

import os
import subprocess

from failwatch_moonraker.config import parse_config
from tests.integration.test_install import TIMEOUT, Host, host  # noqa: F401  (fixture)


def test_new_config_watches_with_the_local_model(host: Host) -> None:  # noqa: F811
    data = host.add_moonraker()
    out = host.install("--local", "obico").stdout
    cfg = (data / "config" / "failwatch.cfg").read_text()
    assert "\nbackend: onnx\n" in cfg and "\n#backend: obico\n" not in cfg
    config = parse_config(cfg)  # valid without credentials
    assert config.predictor.backend == "onnx" and config.predictor.access_token == ""
    assert "the model is Obico's failure detector (AGPL-3.0 per Obico), downloaded from " \
           "Obico's published URL onto this host; it is not part of failwatch" in out
    assert "uses backend onnx: the model runs on this host, no credentials needed" in out
    model = data / "failwatch" / "models" / "obico-model-weights-5a6b1be1fa.onnx"
    assert f"model fetch obico --dest {model}" in out
    assert "put your predictor credentials" not in out
    assert "failwatch-moonraker detect --config" in out


def test_existing_config_is_not_edited_but_explained(host: Host) -> None:  # noqa: F811
    data = host.add_moonraker()
    mine = data / "config" / "failwatch.cfg"
    mine.write_text("[predictor]\nserial_no: A\naccess_token: B\n")
    out = host.install("--local", "obico").stdout
    assert mine.read_text() == "[predictor]\nserial_no: A\naccess_token: B\n"
    assert "it is not changed: to use obico, set this in its [predictor] section:" in out
    assert "failwatch:   backend: onnx" in out
    mine.write_text("[predictor]\nbackend: onnx\n")
    out = host.install("--local", "obico").stdout
    assert "it already uses backend onnx" in out


def test_other_data_folder_gets_its_own_model_path(host: Host) -> None:  # noqa: F811
    data = host.add_moonraker("2", port=7126)
    host.install("--instance", "2", "--local", "obico")
    cfg = (data / "config" / "failwatch.cfg").read_text()
    assert f"\nmodel: {data}/failwatch/models/obico-model-weights-5a6b1be1fa.onnx\n" in cfg


def test_bad_local_and_32_bit_arm(host: Host) -> None:  # noqa: F811
    host.add_moonraker()
    proc = host.install("--local", "resnet", expect_rc=2)
    assert "--local takes: pinozcam, obico; got 'resnet'" in proc.stderr
    proc = host.install("--local", expect_rc=2)
    assert "--local needs a value" in proc.stderr
    proc = host.install("--uninstall", "--local", "obico", expect_rc=2)
    assert "--local goes with an install" in proc.stderr
    fake_bin = host.tmp / "bin"
    fake_bin.mkdir()
    (fake_bin / "uname").write_text('#!/bin/sh\n[ "$1" = -m ] && echo armv7l || echo Linux\n')
    (fake_bin / "uname").chmod(0o755)
    before = host.snapshot()
    proc = host.install("--local", "obico", expect_rc=1,
                        env={"PATH": f"{fake_bin}:/usr/bin:/bin"})
    assert "onnxruntime, which has no wheels for this armv7l system" in proc.stderr
    assert "python3-onnxruntime" in proc.stderr
    assert host.snapshot() == before  # refused before changing anything


def test_pip_installs_the_extra_and_fetches_the_model(host: Host) -> None:  # noqa: F811
    data = host.add_moonraker()
    # Without --no-pip, in a dry run: the commands are shown, not run.
    proc = subprocess.run(
        ["bash", str(host.repo / "install.sh"), "--prefix", str(host.prefix), "--allow-root",
         "--dry-run", "--local", "obico"],
        env={"HOME": str(host.home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
             "LANG": "C", "SYSTEMCTL": str(host.stub)},
        cwd=host.tmp, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"pip install --quiet --editable {host.repo}\\[onnx\\]" in proc.stdout
    model = data / "failwatch" / "models" / "obico-model-weights-5a6b1be1fa.onnx"
    assert f"failwatch-moonraker model fetch obico --dest {model}" in proc.stdout
    assert not host.venv.exists() and not model.parent.exists()
