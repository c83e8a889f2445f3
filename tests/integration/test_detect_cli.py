"""``failwatch-moonraker detect`` as a user runs it: a real process, no Moonraker."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sim.cli_run import CLI, run_cli
from sim.drawn import part_jpeg, spaghetti_jpeg
from sim.predictor import FakeObicoPredictor


def _pictures(tmp_path: Path) -> tuple[Path, Path]:
    part, tangle = tmp_path / "part.jpg", tmp_path / "tangle.jpg"
    part.write_bytes(part_jpeg())
    tangle.write_bytes(spaghetti_jpeg())
    return part, tangle


async def test_detect_with_the_local_model_json_and_annotated(tmp_path: Path) -> None:
    part, tangle = _pictures(tmp_path)
    drawn = tmp_path / "drawn"
    code, out, err = await run_cli("detect", str(part), str(tangle), "--set", "backend=pinozcam",
                                   "--json", "--annotate", str(drawn), "-c",
                                   str(tmp_path / "none.cfg"), timeout=120)
    # An explicit -c that does not exist is an error, not the defaults.
    assert code == 2 and "none.cfg: config file not found" in err
    code, out, err = await run_cli("detect", str(part), str(tangle), "--set", "backend=pinozcam",
                                   "--json", "--annotate", str(drawn), timeout=120)
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [r["image"] for r in lines] == [str(part), str(tangle)]
    healthy, failing = lines
    assert healthy["p"] < 0.05 and healthy["detections"] == []
    assert failing["p"] >= 0.9 and failing["detections"]
    for conf, box in failing["detections"]:
        assert conf > 0.87 and len(box) == 4
    assert all(r["ms"] > 0 for r in lines)
    assert (drawn / "tangle.annotated.jpg").stat().st_size > 10_000
    assert failing["annotated"] == str(drawn / "tangle.annotated.jpg")


async def test_detect_text_output_with_a_config_file(tmp_path: Path) -> None:
    _, tangle = _pictures(tmp_path)
    cfg = tmp_path / "failwatch.cfg"
    cfg.write_text("[predictor]\nbackend: pinozcam\nscore_threshold: 0.95\n")
    code, out, err = await run_cli("detect", "-c", str(cfg), str(tangle), str(tmp_path / "x.jpg"),
                                   timeout=120)
    assert code == 1, err  # one picture could not be read
    assert f"{tangle}: p=1.000" in out
    confidences = [float(line.split()[0]) for line in out.splitlines() if line.startswith("  ")]
    assert confidences and min(confidences) > 0.95  # the threshold came from the file
    assert f"{tmp_path / 'x.jpg'}: not scored: cannot read it" in out
    assert "engine: pinozcam-runtime" in out and "ms/frame" in out


async def test_missing_engine_package_gives_the_install_command(tmp_path: Path) -> None:
    _, tangle = _pictures(tmp_path)
    hide = tmp_path / "hide" / "pinozcam_runner"
    hide.mkdir(parents=True)
    (hide / "__init__.py").write_text("raise ImportError('not installed (test)')\n")
    env = {"PYTHONPATH": f"{hide.parent}{os.pathsep}{os.getcwd()}"}
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        *CLI, "detect", str(tangle), "--set", "backend=pinozcam",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env})
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = err.decode()
    assert proc.returncode == 2, text
    assert "Traceback" not in text
    assert "needs the pinozcam-runtime package" in text
    assert "./install.sh --local pinozcam" in text
    assert "pip install 'failwatch-moonraker[pinozcam]'" in text


async def test_detect_with_a_remote_backend(tmp_path: Path) -> None:
    part, _ = _pictures(tmp_path)
    async with FakeObicoPredictor(score=lambda frame, pid: 0.7) as fake:
        code, out, err = await run_cli(
            "detect", str(part), "--json", "--set", f"url={fake.url}",
            "--set", f"serial_no={fake.serial_no}", "--set", f"access_token={fake.access_token}")
    assert code == 0, err
    record = json.loads(out)
    assert record["p"] == 0.7 and record["detections"]
    assert fake.print_ids == ["failwatch-detect"]
    assert fake.access_token not in out + err


async def test_detect_bad_set_is_a_config_error(tmp_path: Path) -> None:
    part, _ = _pictures(tmp_path)
    code, _, err = await run_cli("detect", str(part), "--set", "backend=pinozcam",
                                 "--set", "cpus=0,99")
    assert code == 2
    assert "[predictor] cpus: must be auto, all, or CPU numbers from 0 to" in err
    code, _, err = await run_cli("detect", str(part), "--set", "backend")
    assert code == 2 and "expected KEY=VALUE" in err


async def test_detect_without_any_config_says_what_to_do(tmp_path: Path) -> None:
    part, _ = _pictures(tmp_path)
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        *CLI, "detect", str(part), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "HOME": str(tmp_path)})
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert "serial_no: required for backend 'obico'" in err.decode()
    assert "--set backend=pinozcam" in err.decode()
