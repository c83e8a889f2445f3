"""The emulated Klippy on its own socket: protocol details Moonraker relies on (Part B).

Fast (no Moonraker): a raw unix-socket client speaks the 0x03-framed protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sim.klippy import EmulatedKlippy, KlippyError, parse_gcode_line

pytestmark = pytest.mark.timeout(30)


class RawKlippyClient:
    """What Moonraker does on the socket, minus everything else."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pushes: list[dict[str, Any]] = []
        self.replies: list[dict[str, Any]] = []
        self._ids = itertools.count(100)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._pushed = asyncio.Event()
        self.eof = asyncio.Event()

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_unix_connection(str(self.path))
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                data = await self.reader.readuntil(b"\x03")
                msg = json.loads(data[:-1])
                if "method" in msg:
                    self.pushes.append(msg)
                    event, self._pushed = self._pushed, asyncio.Event()
                    event.set()
                else:
                    self.replies.append(msg)
                    fut = self._pending.pop(msg.get("id"), None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.eof.set()
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("klippy closed the socket"))

    async def raw(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        req_id = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        msg = {"id": req_id, "method": method, "params": params or {}}
        self.writer.write(json.dumps(msg).encode() + b"\x03")
        return await asyncio.wait_for(fut, 10)

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        reply = await self.raw(method, params)
        if "error" in reply:
            raise KlippyError(reply["error"]["message"])
        return reply["result"]

    async def wait_push(self, method: str, start: int = 0, timeout: float = 5.0) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pos = start
        while True:
            while pos < len(self.pushes):
                pos += 1
                if self.pushes[pos - 1]["method"] == method:
                    return self.pushes[pos - 1]
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no {method} push; got {self.pushes[start:]}")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._pushed.wait(), remaining)

    async def close(self) -> None:
        self.writer.close()
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task


@pytest.fixture
async def klippy(tmp_path: Path) -> AsyncIterator[EmulatedKlippy]:
    # A short socket path: pytest's tmp_path can exceed the 107-byte AF_UNIX limit.
    sock_dir = Path(tempfile.mkdtemp(prefix="fwk-"))
    emu = EmulatedKlippy(
        sock_dir / "klippy.sock", gcodes_path=tmp_path / "gcodes",
        config_file=tmp_path / "config" / "printer.cfg", print_time=1.0,
        macros=["TIMELAPSE_TAKE_FRAME"],
    )
    (tmp_path / "gcodes").mkdir()
    (tmp_path / "gcodes" / "cube.gcode").write_text("G28\nG1 X1\n")
    await emu.start(startup_delay=0.05)
    await emu.wait_for_state("ready")
    try:
        yield emu
    finally:
        await emu.stop()
        assert not emu.socket_path.exists()
        sock_dir.rmdir()


@pytest.fixture
async def client(klippy: EmulatedKlippy) -> AsyncIterator[RawKlippyClient]:
    conn = RawKlippyClient(klippy.socket_path)
    await conn.connect()
    await conn.call("gcode/subscribe_output", {"response_template": {"method": "gcode_out"}})
    yield conn
    await conn.close()


def test_parse_gcode_line() -> None:
    cmd = parse_gcode_line('respond prefix="failwatch:" MSG="a b  c" ; comment')
    assert cmd is not None and cmd.name == "RESPOND"
    assert cmd.params == {"PREFIX": "failwatch:", "MSG": "a b  c"}
    cmd = parse_gcode_line("M104 S210.5 T0")
    assert cmd is not None and cmd.params == {"S": "210.5", "T": "0"}
    cmd = parse_gcode_line("M117 Hello World")
    assert cmd is not None and cmd.raw_args == "Hello World"
    assert parse_gcode_line("   ; only a comment") is None
    with pytest.raises(KlippyError, match="Malformed command"):
        parse_gcode_line('RESPOND MSG="unterminated')
    with pytest.raises(KlippyError, match="Malformed command"):
        parse_gcode_line("RESPOND MSG=hello world")


async def test_startup_then_ready_handshake(tmp_path: Path) -> None:
    sock = Path(tempfile.mkdtemp(prefix="fwk-")) / "k.sock"
    emu = EmulatedKlippy(sock, gcodes_path=tmp_path / "g", config_file=tmp_path / "c" / "p.cfg")
    await emu.start(startup_delay=0.3)
    conn = RawKlippyClient(sock)
    try:
        await conn.connect()
        info = await conn.call("info", {"client_info": {"program": "Moonraker"}})
        assert info["state"] == "startup"
        for key in ("klipper_path", "python_path", "process_id", "log_file", "config_file",
                    "software_version", "hostname", "state_message"):
            assert key in info
        assert (await conn.call("objects/list"))["objects"] == ["webhooks"]
        endpoints = (await conn.call("list_endpoints"))["endpoints"]
        assert "pause_resume/pause" not in endpoints and "gcode/script" in endpoints
        with pytest.raises(KlippyError, match="Printer is not ready"):
            await conn.call("gcode/script", {"script": "M104 S200"})
        await emu.wait_for_state("ready")
        assert (await conn.call("info"))["state"] == "ready"
        assert "pause_resume/pause" in (await conn.call("list_endpoints"))["endpoints"]
        query = await conn.call("objects/query", {"objects": {"configfile": ["config"]}})
        assert query["status"]["configfile"]["config"]["virtual_sdcard"]["path"] == str(
            tmp_path / "g")
        assert (tmp_path / "c" / "p.cfg").exists()
    finally:
        await conn.close()
        await emu.stop()
        sock.parent.rmdir()


async def test_errors_and_reply_shape(klippy: EmulatedKlippy, client: RawKlippyClient) -> None:
    reply = await client.raw("nope")
    assert reply == {"id": reply["id"], "error": {
        "error": "WebRequestError", "message": "webhooks: No registered callback for path 'nope'"}}
    ok = await client.raw("gcode/script", {"script": "G28"})
    assert ok == {"id": ok["id"], "result": {}}
    assert all("method" not in r for r in client.replies)

    mark = len(client.pushes)
    with pytest.raises(KlippyError, match="^Unable to open file$"):
        await client.call(
            "gcode/script", {"script": "SDCARD_PRINT_FILE FILENAME=nope.gcode\nM117 x"})
    # The error went to the console first; the line after the failing one never ran.
    assert client.pushes[mark:] == [{"method": "gcode_out",
                                     "params": {"response": "!! Unable to open file"}}]
    assert klippy.gcode_lines[-1] == "SDCARD_PRINT_FILE FILENAME=nope.gcode"


async def test_console_commands(klippy: EmulatedKlippy, client: RawKlippyClient) -> None:
    script = "\n".join([
        'RESPOND MSG="a b c"',
        "RESPOND TYPE=command MSG=action:prompt_show",
        'RESPOND TYPE=error MSG="bad thing"',
        'RESPOND PREFIX="failwatch:" MSG="hi there"',
        "M118 plain words",
        "FOO",
        "M117 Printing 50%",
        "SET_GCODE_VARIABLE MACRO=TIMELAPSE_TAKE_FRAME VARIABLE=is_paused VALUE=True",
    ])
    await client.call("gcode/script", {"script": script})
    assert klippy.console[-6:] == [
        "echo: a b c", "// action:prompt_show", "!! bad thing", "failwatch: hi there",
        "echo: plain words", '// Unknown command:"FOO"']
    assert klippy.gcode_lines[-len(script.split("\n")):] == script.split("\n")
    assert klippy.status["display_status"]["message"] == "Printing 50%"
    assert klippy.status["gcode_macro TIMELAPSE_TAKE_FRAME"] == {"is_paused": True}
    assert [p["params"]["response"] for p in client.pushes][-6:] == klippy.console[-6:]
    await klippy.wait_for_console(r"^failwatch: hi", timeout=0.1)
    with pytest.raises(TimeoutError, match="M118 plain words"):
        await klippy.wait_for_gcode(r"^NEVER", timeout=0.1, start=0)


async def test_subscription_diffs(klippy: EmulatedKlippy, client: RawKlippyClient) -> None:
    other = RawKlippyClient(klippy.socket_path)
    await other.connect()
    try:
        sub = await client.call("objects/subscribe", {
            "objects": {"print_stats": None, "extruder": ["target"], "nope": None},
            "response_template": {"method": "status"}})
        assert sub["status"]["print_stats"]["state"] == "standby"
        assert sub["status"]["extruder"] == {"target": 0.0}
        assert sub["status"]["nope"] == {}
        await other.call("objects/subscribe", {"objects": {"webhooks": None},
                                               "response_template": {"method": "s2"}})
        mark = len(client.pushes)
        await client.call("gcode/script", {"script": "M104 S200"})
        push = await client.wait_push("status", mark)
        assert push["params"]["status"] == {"extruder": {"target": 200.0}}
        assert isinstance(push["params"]["eventtime"], float)
        assert not [p for p in other.pushes if p["method"] == "s2"]  # webhooks unchanged

        # A new subscribe replaces the old one.
        await client.call("objects/subscribe", {"objects": {"pause_resume": None},
                                                "response_template": {"method": "status"}})
        mark = len(client.pushes)
        klippy.start_print("cube.gcode")
        await client.call("gcode/script", {"script": "PAUSE"})
        push = await client.wait_push("status", mark)
        assert push["params"]["status"] == {"pause_resume": {"is_paused": True}}
    finally:
        await other.close()


async def test_print_lifecycle(klippy: EmulatedKlippy, client: RawKlippyClient) -> None:
    await client.call("gcode/script", {"script": "SDCARD_PRINT_FILE FILENAME=cube.gcode"})
    ps, vsd = klippy.status["print_stats"], klippy.status["virtual_sdcard"]
    assert ps["state"] == "printing" and ps["filename"] == "cube.gcode"
    assert vsd["is_active"] and vsd["file_size"] == len("G28\nG1 X1\n")
    assert klippy.console[-2:] == ["File opened:cube.gcode Size:10", "File selected"]
    with pytest.raises(KlippyError, match="SD busy"):
        klippy.start_print("cube.gcode")
    await client.call("gcode/script", {"script": "RESUME"})
    assert klippy.console[-1] == "// Print is not paused, resume aborted"

    await client.call("pause_resume/pause")
    assert klippy.gcode_lines[-1] == "PAUSE"
    assert klippy.status["print_stats"]["state"] == "paused"
    await client.call("pause_resume/pause")
    assert klippy.console[-1] == "// Print already paused"
    before = dict(klippy.status["print_stats"])
    await asyncio.sleep(0.6)
    after = klippy.status["print_stats"]
    assert after["total_duration"] > before["total_duration"]
    assert after["print_duration"] == before["print_duration"]

    await client.call("pause_resume/resume")
    await klippy.wait_for_print_state("complete", timeout=3)
    assert klippy.status["virtual_sdcard"]["file_path"] is None
    assert klippy.status["virtual_sdcard"]["progress"] == 1.0
    assert klippy.status["idle_timeout"]["state"] in ("Printing", "Ready")

    klippy.start_print("/cube.gcode")
    await client.call("pause_resume/cancel")
    assert klippy.status["print_stats"]["state"] == "cancelled"
    assert klippy.status["virtual_sdcard"] == {
        "file_path": None, "progress": 0.0, "is_active": False, "file_position": 0, "file_size": 0}


async def test_heaters_and_idle_timeout(klippy: EmulatedKlippy, client: RawKlippyClient) -> None:
    klippy.heat_fraction = 0.8
    await asyncio.wait_for(
        client.call("gcode/script", {"script": "M109 S60\nM140 S50"}), timeout=5)
    assert abs(klippy.status["extruder"]["temperature"] - 60) <= 1.0
    assert klippy.status["heater_bed"]["target"] == 50.0
    await client.call(
        "gcode/script", {"script": "SET_HEATER_TEMPERATURE HEATER=extruder TARGET=90"})
    assert klippy.status["extruder"]["target"] == 90.0
    with pytest.raises(KlippyError, match="out of range"):
        await client.call("gcode/script", {"script": "M104 S999"})

    klippy.start_print("cube.gcode")
    await client.call("gcode/script", {"script": "PAUSE\nSET_IDLE_TIMEOUT TIMEOUT=0.3"})
    assert klippy.console[-1].startswith("// idle_timeout: Timeout set to 0.30")
    start = len(klippy.gcode_lines)
    await klippy.wait_for_gcode(r"^TURN_OFF_HEATERS$", timeout=3, start=start)
    assert klippy.status["extruder"]["target"] == 0.0
    assert klippy.status["heater_bed"]["target"] == 0.0


async def test_remote_methods(klippy: EmulatedKlippy, client: RawKlippyClient) -> None:
    with pytest.raises(KlippyError, match="not registered"):
        await klippy.call_remote_method("failwatch_command", cmd="x")
    await client.call("register_remote_method", {
        "response_template": {"method": "failwatch_command"}, "remote_method": "failwatch_command"})
    mark = len(client.pushes)
    await klippy.call_remote_method("failwatch_command", cmd="dismiss", reason="ok")
    push = await client.wait_push("failwatch_command", mark)
    assert push == {"method": "failwatch_command", "params": {"cmd": "dismiss", "reason": "ok"}}

    calls: list[dict[str, str]] = []
    klippy.add_macro("FAILWATCH_DISMISS", calls.append)
    klippy.add_macro("FAILWATCH_GHOST", lambda p: klippy.call_remote_method("nobody"))
    await client.call("gcode/script", {"script": "FAILWATCH_DISMISS REASON=x\nFAILWATCH_GHOST"})
    assert calls == [{"REASON": "x"}]  # and the unregistered remote call was swallowed


async def test_restart_and_shutdown(klippy: EmulatedKlippy, client: RawKlippyClient) -> None:
    await client.call("emergency_stop")
    assert klippy.state == "shutdown"
    assert klippy.console[-1] == "!! Shutdown due to webhooks request"
    with pytest.raises(KlippyError, match="Shutdown due to webhooks request"):
        await client.call("gcode/script", {"script": "M104 S200"})
    assert klippy.console[-1] == "!! Shutdown due to webhooks request"
    assert klippy.console[-2].startswith("// Shutdown due to webhooks request\n// ")
    q = await client.call("objects/query", {"objects": {"webhooks": None, "print_stats": None}})
    assert q["status"]["webhooks"]["state"] == "shutdown"
    assert q["status"]["print_stats"]["state"] == "standby"

    assert await client.call("gcode/script", {"script": "FIRMWARE_RESTART"}) == {}
    await asyncio.wait_for(client.eof.wait(), 3)
    await klippy.wait_for_state("ready", timeout=3)
    again = RawKlippyClient(klippy.socket_path)
    await again.connect()
    try:
        assert (await again.call("info"))["state"] == "ready"
    finally:
        await again.close()


async def test_heating_waits_hold_the_gcode_lock(klippy: EmulatedKlippy,
                                                 client: RawKlippyClient) -> None:
    """As in Klipper, M109 holds the G-code lock: a PAUSE or RESPOND waits in line."""
    klippy.max_heat_rate = 0.0  # a heater that is not getting anywhere yet
    klippy.start_print("cube.gcode")
    klippy.print_time = 3600.0
    heating = asyncio.create_task(client.call("gcode/script", {"script": "M109 S215"}))
    await klippy.wait_for_gcode(r"^M109 S215$", timeout=3)
    pause = asyncio.create_task(client.call("pause_resume/pause"))
    respond = asyncio.create_task(client.call("gcode/script", {"script": 'RESPOND MSG="hi"'}))
    await asyncio.sleep(1.5)
    assert not pause.done() and not respond.done()
    assert klippy.status["print_stats"]["state"] == "printing"
    reports = [c for c in klippy.console if c.startswith("B:")]
    assert reports and reports[-1].startswith("B:25.0 /0.0 T0:25.0 /215.0")
    klippy.max_heat_rate = None  # the heater catches up
    await asyncio.wait_for(heating, 10)
    await asyncio.wait_for(pause, 5)
    await asyncio.wait_for(respond, 5)
    assert klippy.status["print_stats"]["state"] == "paused"
    assert klippy.gcode_lines[-2:] == ["PAUSE", 'RESPOND MSG="hi"']  # in the order sent


async def test_temperature_wait_fan_and_idle_timeout_errors(klippy: EmulatedKlippy,
                                                            client: RawKlippyClient) -> None:
    klippy.heat_fraction = 0.8
    await client.call("gcode/script", {"script": "M140 S60\nTEMPERATURE_WAIT SENSOR=heater_bed "
                                                  "MINIMUM=59 MAXIMUM=61"})
    assert 59 <= klippy.status["heater_bed"]["temperature"] <= 61
    with pytest.raises(KlippyError, match="^Unknown sensor 'chamber'$"):
        await client.call("gcode/script", {"script": "TEMPERATURE_WAIT SENSOR=chamber MINIMUM=1"})
    with pytest.raises(KlippyError, match="missing MINIMUM or MAXIMUM"):
        await client.call("gcode/script", {"script": "TEMPERATURE_WAIT SENSOR=extruder"})
    await client.call("gcode/script", {"script": "M106 S128"})
    assert klippy.status["fan"]["speed"] == pytest.approx(0.502, abs=0.001)
    await client.call("gcode/script", {"script": "M107"})
    assert klippy.status["fan"]["speed"] == 0.0
    with pytest.raises(KlippyError, match="TIMEOUT must be above 0.0"):
        await client.call("gcode/script", {"script": "SET_IDLE_TIMEOUT TIMEOUT=0"})
    await client.call("gcode/script", {"script": "SET_IDLE_TIMEOUT TIMEOUT=3600"})
    assert klippy.idle_timeout == 3600.0
    q = await client.call("objects/query", {"objects": {"configfile": ["settings"]}})
    assert q["status"]["configfile"]["settings"]["idle_timeout"]["timeout"] == 600.0
