"""install.sh --local obico: Obico's model on this host, in the fake host of test_install.

``--no-pip`` (as in every installer test) installs nothing and fetches nothing;
what is checked is what the user reads and which files change. The download
itself is ``failwatch-moonraker model fetch``, tested against a local server in
test_model_fetch.
"""

from __future__ import annotations

from test_install import Host, host  # noqa: F401  (the fake host and its fixture)


def test_new_config_watches_with_the_local_model(host: Host) -> None:  # noqa: F811
    data = host.add_moonraker()
    out = host.install("--local", "obico").stdout
    cfg = (data / "config" / "failwatch.cfg").read_text()
    assert "\nbackend: onnx\n" in cfg and "\n#backend: obico\n" not in cfg
    assert "Obico's failure detector (AGPL-3.0 per Obico), downloaded from Obico's " \
           "published URL onto this host; it is not part of failwatch" in out
    assert "watches with the model on this host ([predictor] backend: onnx)" in out
    model = data / "failwatch" / "models" / "obico-model-weights-5a6b1be1fa.onnx"
    assert f"model fetch obico --dest {model}" in out
    assert "put your predictor credentials" not in out
    assert "failwatch-moonraker detect PICTURE.jpg" in out


def test_existing_config_is_not_edited_but_explained(host: Host) -> None:  # noqa: F811
    data = host.add_moonraker()
    mine = data / "config" / "failwatch.cfg"
    mine.write_text("[predictor]\nserial_no: A\naccess_token: B\n")
    out = host.install("--local", "obico").stdout
    assert mine.read_text() == "[predictor]\nserial_no: A\naccess_token: B\n"
    assert "set in the [predictor] section" in out and "  backend: onnx" in out
    assert "install.sh never edits your failwatch.cfg" in out
    mine.write_text("[predictor]\nbackend: onnx\n")
    out = host.install("--local", "obico").stdout
    assert "set in the [predictor] section" not in out  # already there


def test_other_data_folder_gets_its_own_model_path(host: Host) -> None:  # noqa: F811
    data = host.add_moonraker("2", port=7126)
    host.install("--instance", "2", "--local", "obico")
    cfg = (data / "config" / "failwatch.cfg").read_text()
    assert f"\nmodel: {data}/failwatch/models/obico-model-weights-5a6b1be1fa.onnx\n" in cfg


def test_bad_local_and_32_bit_arm(host: Host) -> None:  # noqa: F811
    host.add_moonraker()
    proc = host.install("--local", "resnet", expect_rc=2)
    assert "--local takes obico" in proc.stderr
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
