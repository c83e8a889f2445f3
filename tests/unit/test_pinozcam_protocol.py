"""``backend: pinozcam`` against a stand-in runner: protocol v1, errors, finding the runtime."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import stat
import sys
from pathlib import Path

import pytest

from failwatch_moonraker.config import parse_config
from failwatch_moonraker.predictors.base import BadResponse, Unavailable
from failwatch_moonraker.predictors.local import pinozcam
from failwatch_moonraker.predictors.local.engine import EngineMissing, EngineSpec
from failwatch_moonraker.predictors.local.pinozcam import PinozcamPredictor, find_runtime
from sim.drawn import part_jpeg

STANDIN = str(Path(__file__).resolve().parents[1] / "standin_runner.py")


class StandinPredictor(PinozcamPredictor):
    """The real backend, with the stand-in runner in place of PiNozCam's."""

    def __init__(self, mode: str, timeout: float = 10.0) -> None:
        cfg = parse_config(f"[predictor]\nbackend: pinozcam\ntimeout: {timeout}\n")
        super().__init__(cfg.predictor)
        self.mode = mode

    def _spec(self) -> EngineSpec:
        return EngineSpec(argv=(sys.executable, STANDIN, self.mode, "standin.pte", "640",
                                "384", "0.87", "0.04", "", "10"),
                          nice=10, exit_codes=pinozcam.EXIT_CODES,
                          facts={"package": "standin"})


async def test_answer_is_severity_and_boxes_above_the_threshold_in_frame_pixels() -> None:
    pred = StandinPredictor("ok")
    try:
        answer = await pred.predict(part_jpeg(), "job")
        assert answer.p == 1.0
        # The stand-in returns a 0.95 box over the content rectangle and a 0.5 one:
        # only the first counts (> 0.87), and it covers the whole 1280x720 frame.
        assert len(answer.detections) == 1
        conf, box = answer.detections[0]
        assert conf == 0.95 and box == pytest.approx((640.0, 360.0, 1280.0, 720.0))
        assert pred.engine_facts()["state"] == "running"
        assert "standin" in pred.engine_summary()
    finally:
        await pred.close()


@pytest.mark.parametrize(("mode", "text"), [
    ("wrong_req_id", "answered request 3, not 2"),
    ("not_json", "not JSON"),
    ("bad_status", "status 3: execution failed"),
    ("nan", "severity 'NaN'"),
])
async def test_bad_answers_are_bad_responses(mode: str, text: str) -> None:
    pred = StandinPredictor(mode)
    try:
        await pred.predict(part_jpeg(), "job")  # frame 2 of the runner (1 is the warm-up)
        pytest.fail("no error")
    except BadResponse as exc:
        assert text in str(exc)
    finally:
        await pred.close()


async def test_wrong_req_id_restarts_the_runner() -> None:
    pred = StandinPredictor("wrong_req_id")
    try:
        with pytest.raises(BadResponse):
            await pred.predict(part_jpeg(), "job")
        assert not pred.engine.running  # out of step: not trusted any more
    finally:
        await pred.close()


async def test_hanging_runner_is_killed_and_restarted() -> None:
    pred = StandinPredictor("hang", timeout=1.0)
    try:
        with pytest.raises(Unavailable, match="did not answer within 1 s"):
            await pred.predict(part_jpeg(), "job")
        assert not pred.engine.running
        # Back-off 0: the next frame starts a fresh runner (its warm-up works, the
        # frame after hangs again).
        with pytest.raises(Unavailable, match="did not answer"):
            await pred.predict(part_jpeg(), "job")
        assert pred.engine.starts == 2
    finally:
        await pred.close()


async def test_runner_dying_mid_frame_then_frames_resume() -> None:
    pred = StandinPredictor("die")
    try:
        with pytest.raises(Unavailable, match="killed by SIGKILL"):
            await pred.predict(part_jpeg(), "job")
        pred.mode = "ok"
        assert (await pred.predict(part_jpeg(), "job")).p == 1.0
    finally:
        await pred.close()


@pytest.mark.parametrize(("mode", "error", "text"), [
    ("exit2", Unavailable, "exited with code 2 (bad start arguments): usage"),
    ("exit3", Unavailable, "exited with code 3 (the model cannot be loaded)"),
    ("bad_info", BadResponse, "reports {'proc_w': 416}"),
    ("die_first", Unavailable, "killed by SIGKILL"),
])
async def test_runner_failing_at_start(mode: str, error: type[Exception], text: str) -> None:
    pred = StandinPredictor(mode)
    try:
        with pytest.raises(error) as exc:
            await pred.predict(part_jpeg(), "job")
        assert text in str(exc.value)
        assert not pred.engine.running
    finally:
        await pred.close()


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pinozcam, "_candidate_modules", lambda: ["no_such_pinozcam_module"])
    with pytest.raises(EngineMissing) as exc:
        find_runtime()
    text = str(exc.value)
    assert "pinozcam-runtime package" in text and "AGPL-3.0" in text
    assert "./install.sh --local pinozcam" in text
    assert "pip install 'failwatch-moonraker[pinozcam]'" in text


def _board_variant(tmp_path: Path, name: str, *, tamper: bool = False) -> Path:
    """A runtime package laid out like pinozcam-runtime, whose runner is the stand-in."""
    machine = pinozcam._MACHINES.get(platform.machine().lower(), platform.machine())
    root = tmp_path / name
    (root / "bin").mkdir(parents=True)
    (root / "models").mkdir()
    runner = root / "bin" / f"nozcam_daemon.{machine}.static"
    runner.write_text(f"#!/bin/sh\nexec {sys.executable} {STANDIN} ok \"$@\"\n")
    runner.chmod(0o644)  # pip dropped the run bit
    model = root / "models" / "board.pte"
    model.write_bytes(b"not really a model")
    files = {}
    for path in (runner, model):
        data = path.read_bytes()
        files[str(path.relative_to(root))] = {"bytes": len(data),
                                              "sha256": hashlib.sha256(data).hexdigest()}
    if tamper:
        model.write_bytes(b"not really a model, changed")
    (root / "manifest.json").write_text(json.dumps(
        {"runner_protocol": 1, "files": files, "models": {"board.pte": {}}}))
    (root / "__init__.py").write_text(
        "import os\nROOT = os.path.dirname(os.path.abspath(__file__))\n"
        "BIN_DIR = os.path.join(ROOT, 'bin')\nMODEL_DIR = os.path.join(ROOT, 'models')\n"
        f"TARGET = {machine!r}\nVERSION = '9.9'\n")
    return runner


async def test_board_variant_is_found_checked_and_run(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    runner = _board_variant(tmp_path, "pinozcam_runner_testboard")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(pinozcam, "_candidate_modules",
                        lambda: ["no_such_pinozcam_module", "pinozcam_runner_testboard"])
    rt = find_runtime()
    assert rt.module == "pinozcam_runner_testboard" and rt.version == "9.9"
    assert rt.model.endswith("board.pte")
    assert os.stat(runner).st_mode & stat.S_IXUSR  # the run bit was set
    pred = PinozcamPredictor(parse_config("[predictor]\nbackend: pinozcam\n").predictor)
    try:
        assert (await pred.predict(part_jpeg(), "job")).p == 1.0
        facts = pred.engine_facts()
        assert facts["version"] == "9.9" and facts["runner"] == str(runner)
    finally:
        await pred.close()


def test_damaged_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _board_variant(tmp_path, "pinozcam_runner_damaged", tamper=True)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(pinozcam, "_candidate_modules", lambda: ["pinozcam_runner_damaged"])
    with pytest.raises(EngineMissing, match="models/board.pte does not match its manifest"):
        find_runtime()


async def test_new_threshold_or_sensitivity_restarts_the_runner() -> None:
    class Configurable(StandinPredictor):
        def _spec(self) -> EngineSpec:
            return EngineSpec(argv=(sys.executable, STANDIN, "ok", "standin.pte", "640", "384",
                                    f"{self.score_threshold:g}", f"{self.area_sensitivity:g}",
                                    "", "10"))

    pred = Configurable("ok")
    try:
        await pred.predict(part_jpeg(), "job")
        assert pred.engine_facts()["score_threshold"] == 0.87
        pid = pred.engine.pid
        await pred.configure(0.87, 0.04)  # unchanged: kept
        assert pred.engine.pid == pid
        await pred.configure(0.93, 0.06)
        assert not pred.engine.running
        answer = await pred.predict(part_jpeg(), "job")
        facts = pred.engine_facts()
        assert facts["score_threshold"] == 0.93 and facts["area_sensitivity"] == 0.06
        assert pred.engine.pid != pid
        assert len(answer.detections) == 1  # 0.95 > 0.93; 0.5 is not
    finally:
        await pred.close()
