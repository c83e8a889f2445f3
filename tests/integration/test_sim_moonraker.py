"""The emulated Klippy proven against the REAL Moonraker 0.11.0.

Each test asserts what a websocket/HTTP client of Moonraker sees, which is exactly
what the failwatch daemon will see in its own integration tests.
"""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest

from sim.harness import SimPrinter
from sim.moonraker_server import MoonrakerError
from sim.rpc_client import MoonrakerClient, RpcError

pytestmark = pytest.mark.timeout(60)


def _ps_state(note: dict, state: str) -> bool:
    return MoonrakerClient.status_of(note).get("print_stats", {}).get("state") == state


async def test_moonraker_reaches_klippy_ready(sim_printer: SimPrinter) -> None:
    info = await sim_printer.moonraker_call("server.info")
    assert info["klippy_connected"] is True
    assert info["klippy_state"] == "ready"
    assert info["missing_klippy_requirements"] == []
    assert info["moonraker_version"].startswith("v0.11.0") or "0.11.0" in info["moonraker_version"]
    printer_info = await sim_printer.moonraker_call("printer.info")
    assert printer_info["state"] == "ready"
    assert printer_info["state_message"] == "Printer is ready"
    objects = await sim_printer.moonraker_call("printer.objects.list")
    assert {"print_stats", "virtual_sdcard", "pause_resume", "webhooks"} <= set(objects["objects"])
    # The handshake reached the emulator as Part B3 describes.
    endpoints = [name for name, _ in sim_printer.klippy.requests]
    for expected in ("info", "list_endpoints", "objects/subscribe", "gcode/subscribe_output",
                     "objects/list", "objects/query", "register_remote_method"):
        assert expected in endpoints


async def test_subscription_full_status_then_diffs(
    sim_printer: SimPrinter, ws_client: MoonrakerClient
) -> None:
    sub = await ws_client.subscribe(
        {"print_stats": None, "virtual_sdcard": None, "webhooks": None, "extruder": ["target"]})
    status = sub["status"]
    assert status["print_stats"]["state"] == "standby"
    assert set(status["print_stats"]) >= {
        "filename", "total_duration", "print_duration", "filament_used", "state", "message", "info"}
    assert status["virtual_sdcard"]["is_active"] is False
    assert status["webhooks"] == {"state": "ready", "state_message": "Printer is ready"}
    assert status["extruder"] == {"target": 0.0}

    mark = ws_client.mark()
    sim_printer.write_gcode("cube.gcode")
    job = await sim_printer.start_print("cube.gcode")
    started = await ws_client.wait_for(
        "notify_status_update", lambda n: _ps_state(n, "printing"), start=mark)
    diff = MoonrakerClient.status_of(started)
    assert diff["print_stats"]["filename"] == "cube.gcode"
    assert diff["virtual_sdcard"]["is_active"] is True
    assert diff["virtual_sdcard"]["file_path"].endswith("/gcodes/cube.gcode")
    assert "webhooks" not in diff  # unchanged objects are not repeated

    # Later updates carry only the fields that changed.
    later = await ws_client.wait_for(
        "notify_status_update", lambda n: "print_stats" in MoonrakerClient.status_of(n),
        start=ws_client.notifications.index(started) + 1)
    later_ps = MoonrakerClient.status_of(later)["print_stats"]
    assert "print_duration" in later_ps
    assert "filename" not in later_ps and "state" not in later_ps

    # Moonraker tracks the job: a 6-hex-digit job id while in progress.
    assert job is not None and re.fullmatch(r"[0-9A-F]{6}", job["job_id"])
    history = await sim_printer.moonraker_call("server.history.list", {"limit": 5})
    current = history["jobs"][0]
    assert current["status"] == "in_progress"
    assert current["filename"] == "cube.gcode"
    assert re.fullmatch(r"[0-9A-F]{6}", current["job_id"])


async def test_pause_reaches_klippy_and_resume_keeps_job(
    sim_printer: SimPrinter, ws_client: MoonrakerClient
) -> None:
    await ws_client.subscribe({"print_stats": ["state"], "pause_resume": None})
    job = await sim_printer.start_print("part.gcode")
    assert job is not None
    mark = ws_client.mark()
    gcode_mark = len(sim_printer.klippy.gcode_lines)
    assert await sim_printer.moonraker_call("printer.print.pause") == "ok"
    assert await sim_printer.klippy.wait_for_gcode(r"^PAUSE$", start=gcode_mark) == "PAUSE"
    paused = await ws_client.wait_for(
        "notify_status_update", lambda n: _ps_state(n, "paused"), start=mark)
    assert MoonrakerClient.status_of(paused)["pause_resume"] == {"is_paused": True}

    # Pausing twice only prints a message and still answers ok.
    mark = ws_client.mark()
    assert await sim_printer.moonraker_call("printer.print.pause") == "ok"
    await ws_client.wait_for(
        "notify_gcode_response", lambda n: n["params"] == ["// Print already paused"], start=mark)

    # Resume is a resume for Moonraker (same job), because total_duration kept growing.
    await asyncio.sleep(0.3)
    assert await sim_printer.moonraker_call("printer.print.resume") == "ok"
    await sim_printer.klippy.wait_for_print_state("printing")
    await asyncio.sleep(0.4)
    history = await sim_printer.moonraker_call("server.history.list", {"limit": 1})
    assert history["jobs"][0]["job_id"] == job["job_id"]
    assert history["jobs"][0]["status"] == "in_progress"

    # Cancel ends the job as cancelled.
    assert await sim_printer.moonraker_call("printer.print.cancel") == "ok"
    await sim_printer.klippy.wait_for_print_state("cancelled")
    finished = await sim_printer.wait_for_job(lambda j: j["status"] == "cancelled")
    assert finished["job_id"] == job["job_id"]


async def test_gcode_script_output_and_errors(
    sim_printer: SimPrinter, ws_client: MoonrakerClient
) -> None:
    mark = ws_client.mark()
    result = await ws_client.call(
        "printer.gcode.script", {"script": 'RESPOND PREFIX="failwatch:" MSG="hi there"'})
    assert result == "ok"
    # The output was pushed before the reply: it is already here.
    assert ws_client.find("notify_gcode_response", start=mark)[0]["params"] == [
        "failwatch: hi there"]
    assert sim_printer.klippy.console[-1] == "failwatch: hi there"

    mark = ws_client.mark()
    await ws_client.call("printer.gcode.script", {"script": "M118 plain text\nFOO_BAR X=1"})
    lines = [n["params"][0] for n in ws_client.find("notify_gcode_response", start=mark)]
    assert lines == ["echo: plain text", '// Unknown command:"FOO_BAR"']

    mark = ws_client.mark()
    with pytest.raises(RpcError) as err:
        await ws_client.call("printer.print.start", {"filename": "missing.gcode"})
    assert err.value.code == 400 and err.value.message == "Unable to open file"
    await ws_client.wait_for(
        "notify_gcode_response", lambda n: n["params"] == ["!! Unable to open file"], start=mark)


async def test_webcams_list_points_at_fake_camera(sim_printer: SimPrinter) -> None:
    result = await sim_printer.moonraker_call("server.webcams.list")
    cams = {cam["name"]: cam for cam in result["webcams"]}
    assert cams["simcam"]["snapshot_url"] == sim_printer.camera.url
    assert cams["simcam"]["enabled"] is True
    async with aiohttp.ClientSession() as session:
        async with session.get(cams["simcam"]["snapshot_url"]) as resp:
            body = await resp.read()
    assert resp.status == 200 and resp.content_type == "image/jpeg"
    assert body[:3] == b"\xff\xd8\xff" and 100_000 <= len(body) <= 200_000


async def test_klippy_restart_drops_subscriptions(
    sim_printer: SimPrinter, ws_client: MoonrakerClient
) -> None:
    await ws_client.subscribe({"print_stats": None})
    mark = ws_client.mark()
    await sim_printer.klippy.restart(down_time=0.3)
    await ws_client.wait_for("notify_klippy_disconnected", start=mark)
    ready = await ws_client.wait_for("notify_klippy_ready", start=mark)

    # Moonraker dropped our subscription: a print start produces no update for us...
    after_ready = ws_client.notifications.index(ready) + 1
    await sim_printer.start_print("after_restart.gcode")
    await asyncio.sleep(0.6)
    assert not ws_client.find(
        "notify_status_update", lambda n: "print_stats" in MoonrakerClient.status_of(n),
        start=after_ready)
    # ...until we subscribe again, which returns a fresh snapshot.
    sub = await ws_client.subscribe({"print_stats": None})
    assert sub["status"]["print_stats"]["state"] == "printing"
    mark = ws_client.mark()
    await ws_client.wait_for(
        "notify_status_update", lambda n: "print_stats" in MoonrakerClient.status_of(n),
        start=mark, timeout=3)

    # A G-code RESTART through Moonraker goes the same way (and the job is interrupted).
    mark = ws_client.mark()
    assert await ws_client.call("printer.restart") == "ok"
    await ws_client.wait_for("notify_klippy_disconnected", start=mark)
    await ws_client.wait_for("notify_klippy_ready", start=mark)
    await sim_printer.wait_for_job(lambda j: j["status"] == "klippy_disconnect")


async def test_agent_remote_method(sim_printer: SimPrinter) -> None:
    klippy = sim_printer.klippy
    async with MoonrakerClient(sim_printer.url) as agent, \
            MoonrakerClient(sim_printer.url) as web:
        await web.identify("sim-web", client_type="web")
        with pytest.raises(RpcError) as err:
            await web.call("connection.register_remote_method", {"method_name": "failwatch_x"})
        assert "Only connections of the 'agent' type" in err.value.message

        await agent.identify("failwatch-sim")
        ok = await agent.call(
            "connection.register_remote_method", {"method_name": "failwatch_command"})
        assert ok == "ok"
        await klippy.wait_for_remote_method("failwatch_command")
        await klippy.call_remote_method("failwatch_command", cmd="dismiss", reason="false_alarm")
        note = await agent.wait_for("failwatch_command")
        assert note["params"] == {"cmd": "dismiss", "reason": "false_alarm"}
        assert "id" not in note
        assert not web.find("failwatch_command")

        # A macro that calls the method, run through Moonraker.
        klippy.add_macro(
            "FAILWATCH_DISMISS",
            lambda p: klippy.call_remote_method("failwatch_command", cmd="dismiss",
                                                reason=p.get("REASON", "")))
        mark = agent.mark()
        await web.call("printer.gcode.script", {"script": "FAILWATCH_DISMISS REASON=macro"})
        note = await agent.wait_for("failwatch_command", start=mark)
        assert note["params"] == {"cmd": "dismiss", "reason": "macro"}

        # The registration survives a Klippy restart: Moonraker re-registers it.
        mark = agent.mark()
        await klippy.restart(down_time=0.2)
        await agent.wait_for("notify_klippy_ready", start=mark)
        await klippy.wait_for_remote_method("failwatch_command")
        await klippy.call_remote_method("failwatch_command", cmd="again")
        note = await agent.wait_for("failwatch_command", start=mark)
        assert note["params"] == {"cmd": "again"}

    # Moonraker forgets the method when the agent's socket closes but never tells Klippy
    # (there is no unregister endpoint): Klippy still calls it, Moonraker drops the call.
    await klippy.wait_for_state("ready")
    assert "failwatch_command" in klippy.registered_methods
    await klippy.call_remote_method("failwatch_command", cmd="nobody listens")


async def test_emergency_stop_and_firmware_restart(
    sim_printer: SimPrinter, ws_client: MoonrakerClient
) -> None:
    await ws_client.subscribe({"webhooks": None})
    await sim_printer.start_print("doomed.gcode")
    mark = ws_client.mark()
    assert await ws_client.call("printer.emergency_stop") == "ok"
    await ws_client.wait_for("notify_klippy_shutdown", start=mark)
    await ws_client.wait_for(
        "notify_gcode_response",
        lambda n: n["params"] == ["!! Shutdown due to webhooks request"], start=mark)
    await ws_client.wait_for(
        "notify_status_update",
        lambda n: MoonrakerClient.status_of(n).get("webhooks", {}).get("state") == "shutdown",
        start=mark)
    info = await sim_printer.moonraker_call("server.info")
    assert info["klippy_state"] == "shutdown"
    with pytest.raises(MoonrakerError) as err:
        await sim_printer.moonraker_call("printer.gcode.script", {"script": "M104 S200"})
    assert err.value.code == 400 and "Shutdown due to webhooks request" in err.value.message
    job = await sim_printer.wait_for_job(lambda j: j["status"] != "in_progress")
    assert job["status"] == "klippy_shutdown"

    mark = ws_client.mark()
    assert await ws_client.call("printer.firmware_restart") == "ok"
    await ws_client.wait_for("notify_klippy_ready", start=mark)
    assert sim_printer.klippy.status["print_stats"]["state"] == "standby"


async def test_klippy_coming_back_in_error_sends_no_ready(
    sim_printer: SimPrinter, ws_client: MoonrakerClient
) -> None:
    mark = ws_client.mark()
    await sim_printer.klippy.restart(down_time=0.2, state="error", message="Config error: boom")
    await ws_client.wait_for("notify_klippy_disconnected", start=mark)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while (await sim_printer.moonraker_call("server.info"))["klippy_state"] != "error":
        assert loop.time() < deadline, "Moonraker never reported klippy_state error"
        await asyncio.sleep(0.1)
    assert not ws_client.find("notify_klippy_ready", start=mark)
    info = await sim_printer.moonraker_call("printer.info")
    assert info["state"] == "error" and info["state_message"] == "Config error: boom"


async def test_api_key_required(require_moonraker: None) -> None:
    async with SimPrinter(require_api_key=True, webcam=False) as printer:
        key = printer.api_key
        assert key is not None and re.fullmatch(r"[0-9a-f]{32}", key)

        async with aiohttp.ClientSession() as session:
            async with session.get(f"{printer.http_url}/server/info") as resp:
                assert resp.status == 401

        async with MoonrakerClient(printer.url) as anonymous:
            with pytest.raises(RpcError) as err:
                await anonymous.call("server.info")
            assert err.value.code == -32602 and err.value.message == "Unauthorized"

        async with MoonrakerClient(printer.url) as client:
            await client.identify("failwatch-keyed", api_key=key)
            info = await client.call("server.info")
            assert info["klippy_state"] == "ready"

        async with MoonrakerClient(printer.url, headers={"X-Api-Key": key}) as client:
            info = await client.call("server.info")
            assert info["klippy_connected"] is True
