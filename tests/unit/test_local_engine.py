"""The generic local-engine supervisor against a stand-in runner process."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import struct
import sys
from pathlib import Path

import pytest

from failwatch_moonraker.predictors.base import BadResponse, PredictorError, Unavailable
from failwatch_moonraker.predictors.local.engine import (
    EngineBackingOff,
    EngineSpec,
    EngineStatusError,
    LocalEngine,
    pack_reply,
    pack_request,
    rss_bytes,
)

STANDIN = str(Path(__file__).resolve().parents[1] / "standin_runner.py")
FRAME = struct.pack("<I4i", 7, 0, 12, 640, 360) + bytes(640 * 384 * 3)
PING, INFER, INFO = 1, 2, 3


def spec(mode: str = "ok", **kw: object) -> EngineSpec:
    return EngineSpec(argv=(sys.executable, STANDIN, mode), facts={"package": "standin"},
                      exit_codes={2: "bad arguments", 3: "model cannot load"},
                      **kw)  # type: ignore[arg-type]


def engine(mode: str = "ok", **kw: object) -> LocalEngine:
    options: dict[str, object] = {"timeout": 10.0, "unload_after": 60.0}
    options.update(kw)
    return LocalEngine("standin", spec(mode), **options)  # type: ignore[arg-type]


async def infer(eng: LocalEngine) -> dict[str, object]:
    return json.loads(await eng.request(INFER, FRAME))


def test_framing_is_little_endian() -> None:
    assert pack_request(2, b"ab") == b"\x02\x00\x00\x00\x02\x00\x00\x00ab"
    assert pack_reply(1) == b"\x01\x00\x00\x00\x00\x00\x00\x00"


async def test_lazy_start_answers_and_reports_facts() -> None:
    eng = engine()
    try:
        assert not eng.running and eng.facts()["state"] == "stopped"
        assert await eng.request(PING, timed=False) == b"pong"
        assert eng.running and eng.starts == 1
        answer = await infer(eng)
        assert answer["req_id"] == 7
        facts = eng.facts()
        assert facts["package"] == "standin" and facts["state"] == "running"
        assert facts["startup_s"] is not None and facts["last_ms"] is not None
        assert facts["rss_mb"] and facts["rss_mb"] > 1
        assert "standin, running" in eng.summary()
    finally:
        await eng.close()
    assert not eng.running


async def test_nice_and_affinity_are_applied() -> None:
    cpus = (sorted(os.sched_getaffinity(0))[-1],)
    eng = LocalEngine("standin", spec(nice=7, cpus=cpus), timeout=10.0)
    try:
        info = json.loads(await eng.request(INFO))
        assert info["nice"] == max(7, os.getpriority(os.PRIO_PROCESS, 0))
        assert info["affinity"] == list(cpus)
        assert eng.facts()["cpus"] == str(cpus[0])
    finally:
        await eng.close()


async def test_bad_status_keeps_the_engine() -> None:
    eng = engine("bad_status")
    try:
        await infer(eng)  # the first frame works
        pid = eng.pid
        with pytest.raises(EngineStatusError, match="status 3: execution failed") as err:
            await infer(eng)
        assert err.value.status == 3 and isinstance(err.value, BadResponse)
        assert eng.pid == pid  # the stream is still in step: no restart
        assert await eng.request(PING) == b"pong"
    finally:
        await eng.close()


@pytest.mark.parametrize(("mode", "error", "text"), [
    ("short", BadResponse, "short reply \\(9 of 100 bytes\\)"),
    ("garbled", BadResponse, "garbled reply"),
    ("eof", Unavailable, "exited with code 0"),
    ("die", Unavailable, "killed by SIGKILL"),
])
async def test_broken_replies_are_faults_and_the_engine_restarts(
        mode: str, error: type[PredictorError], text: str) -> None:
    eng = engine(mode)
    try:
        await infer(eng)
        first = eng.pid
        with pytest.raises(error, match=text):
            await infer(eng)
        assert not eng.running
        assert eng.facts()["last_error"]
        # Back-off 0 after the first fault: the next frame starts a new engine.
        await infer(eng)
        assert eng.running and eng.pid != first and eng.starts == 2
    finally:
        await eng.close()


async def test_hung_engine_is_killed_after_timeout() -> None:
    eng = engine("hang", timeout=1.5)
    try:
        await infer(eng)
        pid = eng.pid
        assert pid is not None
        with pytest.raises(Unavailable, match="did not answer within 1.5 s; killed it"):
            await infer(eng)
        assert not eng.running
        assert rss_bytes(pid) is None  # really gone
    finally:
        await eng.close()


@pytest.mark.parametrize(("mode", "text"), [
    ("exit2", "exited with code 2 \\(bad arguments\\): usage: runner"),
    ("exit3", "exited with code 3 \\(model cannot load\\): error: cannot load model"),
])
async def test_exit_at_start_says_why(mode: str, text: str) -> None:
    eng = engine(mode)
    try:
        with pytest.raises(Unavailable, match=text):
            await eng.request(PING)
    finally:
        await eng.close()


async def test_backoff_0_1_5_30() -> None:
    now = [1000.0]
    eng = LocalEngine("standin", spec("exit3"), timeout=10.0, clock=lambda: now[0])
    try:
        with pytest.raises(Unavailable, match="code 3"):
            await eng.request(PING)  # fault 1: next start at once
        with pytest.raises(Unavailable, match="code 3"):
            await eng.request(PING)  # fault 2: next start in 1 s
        with pytest.raises(EngineBackingOff, match="code 3"):
            await eng.request(PING)  # not tried again yet: the same fault, the same words
        assert eng.facts()["state"] == "restarting in 1 s"
        now[0] += 1.0
        with pytest.raises(Unavailable, match="code 3"):
            await eng.request(PING)  # fault 3: 5 s
        now[0] += 4.0
        with pytest.raises(EngineBackingOff):
            await eng.request(PING)
        assert eng.facts()["state"] == "restarting in 1 s"
        now[0] += 1.0
        with pytest.raises(Unavailable, match="code 3"):
            await eng.request(PING)  # fault 4: 30 s
        now[0] += 29.0
        with pytest.raises(EngineBackingOff):
            await eng.request(PING)
        assert eng.facts()["state"] == "restarting in 1 s"
        now[0] += 1.0
        with pytest.raises(Unavailable, match="code 3"):
            await eng.request(PING)  # and 30 s from then on
        now[0] += 29.0
        with pytest.raises(EngineBackingOff):
            await eng.request(PING)
        assert eng.starts == 5
    finally:
        await eng.close()


async def test_killed_between_frames_is_logged_and_restarted(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "failwatch")
    eng = engine()
    try:
        await infer(eng)
        pid = eng.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            if "killed by SIGKILL" in caplog.text:
                break
            await asyncio.sleep(0.05)
        assert "standin was killed by SIGKILL; restarted for the next frame" in caplog.text
        await infer(eng)  # back-off 0: this frame is scored by a new engine
        assert eng.pid != pid and eng.starts == 2
    finally:
        await eng.close()


async def test_unload_after_the_print_ends() -> None:
    eng = engine(unload_after=0.3)
    try:
        await eng.print_started()
        await infer(eng)
        await asyncio.sleep(0.6)
        assert eng.running  # printing: stays up however long between frames
        pid = eng.pid
        assert pid is not None
        await eng.print_ended()
        for _ in range(100):
            if not eng.running:
                break
            await asyncio.sleep(0.05)
        assert not eng.running and rss_bytes(pid) is None
        # The next print starts it again with its first frame.
        await eng.print_started()
        await infer(eng)
        assert eng.running and eng.starts == 2
    finally:
        await eng.close()


async def test_outside_a_print_it_unloads_after_the_last_request() -> None:
    eng = engine(unload_after=0.2)
    try:
        await infer(eng)
        for _ in range(100):
            if not eng.running:
                break
            await asyncio.sleep(0.05)
        assert not eng.running
    finally:
        await eng.close()


async def test_handshake_failure_and_facts() -> None:
    async def handshake(child: object) -> dict[str, object]:
        from failwatch_moonraker.predictors.local.engine import EngineProcess

        assert isinstance(child, EngineProcess)
        info = json.loads(await child.request(INFO, b"", 5.0))
        if info["proc_w"] != 640:
            raise BadResponse(f"engine works at {info['proc_w']} px, not 640")
        return {"model": info["model"]}

    good = LocalEngine("standin", spec(), timeout=5.0, handshake=handshake)
    bad = LocalEngine("standin", spec("bad_info"), timeout=5.0, handshake=handshake)
    try:
        await good.request(PING)
        assert good.facts()["model"] == "standin.pte"
        with pytest.raises(BadResponse, match="416 px"):
            await bad.request(PING)
        assert not bad.running
    finally:
        await good.close()
        await bad.close()


async def test_slow_start_times_out() -> None:
    async def handshake(child: object) -> None:
        from failwatch_moonraker.predictors.local.engine import EngineProcess

        assert isinstance(child, EngineProcess)
        await child.request(PING, b"", 30.0)

    eng = LocalEngine("standin", spec("slow_start"), timeout=5.0, start_timeout=1.0,
                      handshake=handshake)
    try:
        with pytest.raises(Unavailable, match="not ready within 1 s"):
            await eng.request(PING)
        assert not eng.running
    finally:
        await eng.close()


async def test_missing_program_is_unavailable() -> None:
    eng = LocalEngine("standin", EngineSpec(argv=("/nonexistent/runner",)), timeout=5.0)
    with pytest.raises(Unavailable, match="cannot start /nonexistent/runner"):
        await eng.request(PING)
    await eng.close()


async def test_a_python_worker_built_on_serve(tmp_path: Path) -> None:
    worker = tmp_path / "worker.py"
    worker.write_text(
        "import sys\n"
        "from failwatch_moonraker.predictors.local.engine import serve\n"
        "def echo(b):\n    return b[::-1]\n"
        "def picky(b):\n    raise ValueError('need 4 bytes') if len(b) != 4 else None\n"
        "def broken(b):\n    return 1 / 0\n"
        "sys.exit(serve({1: lambda b: b'pong', 7: echo, 8: picky, 9: broken}))\n")
    eng = LocalEngine("worker", EngineSpec(argv=(sys.executable, str(worker))), timeout=10.0)
    try:
        assert await eng.request(1) == b"pong"
        assert await eng.request(7, (b"ab", b"cd")) == b"dcba"  # parts arrive as one payload
        with pytest.raises(EngineStatusError, match="status 2: need 4 bytes"):
            await eng.request(8, b"x")
        with pytest.raises(EngineStatusError, match="status 3: ZeroDivisionError"):
            await eng.request(9)
        with pytest.raises(EngineStatusError, match="status 1: unknown command 5"):
            await eng.request(5)
        assert eng.starts == 1  # status errors keep the worker
    finally:
        await eng.close()
