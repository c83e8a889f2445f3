"""Malformed JSON-RPC messages never end the Moonraker client (issue 10 item 7).

Each is logged and dropped (or the connection is dropped and made again); later
messages are handled as usual and the daemon stays connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from failwatch_moonraker.printer.moonraker import MoonrakerClient, MoonrakerError
from sim.daemon_config import write_daemon_config
from sim.hostile_moonraker import HostileMoonraker
from sim.waits import running_daemon, wait_until

DEEP = "[" * 100_000 + "]" * 100_000
MALFORMED: list[str | bytes] = [
    '{"id": [1], "result": {}}',
    '{"id": {"a": 1}, "result": {}}',
    '{"id": 1.5, "result": {}}',
    DEEP,
    '{"jsonrpc": "2.0", "method": "notify_status_update", "params": ' + DEEP + "}",
    '{"method": [1], "params": []}',
    '{"method": {"x": 1}, "id": [1]}',
    '{"method": "server.extensions.request", "id": ' + "[" * 500 + "]" * 500 + "}",
    '{"id": 99999, "error": "not a dict"}',
    "[1, 2, 3]",
    "null",
    b"\xff\xfe\x00 binary garbage",
    '{"id": 1e999, "result": 1}',
    '{"id": ' + "1" * 5000 + ', "result": 1}',
]
GOOD = json.dumps({"jsonrpc": "2.0", "method": "notify_status_update",
                   "params": [{"print_stats": {"state": "printing"}}, 1.0]})


@contextlib.asynccontextmanager
async def client_running(client: MoonrakerClient) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(client.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        await client.close()


async def test_malformed_messages_are_dropped_and_the_client_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[tuple[str, Any]] = []
    async with HostileMoonraker() as server:
        server.after_identify = [*MALFORMED, GOOD]
        client = MoonrakerClient(server.url, on_notification=lambda m, p: seen.append((m, p)))
        async with client_running(client) as task:
            await wait_until(lambda: seen, timeout=10, what="the good notification")
            assert seen == [("notify_status_update",
                             [{"print_stats": {"state": "printing"}}, 1.0])]
            # the client still answers calls on the same connection
            server.raw_results["server.info"] = (
                '{"id": {id}, "error": {"code": [1], "message": ' + "[" * 300 + "]" * 300 + "}}")
            with pytest.raises(MoonrakerError) as caught:
                await client.call("server.info")
            assert caught.value.code == 500
            del server.raw_results["server.info"]
            assert await client.call("server.files.list") == {}
            await server.send_all('{"id": [1], "result": {}}')
            await server.send_all(GOOD)
            await wait_until(lambda: len(seen) == 2, timeout=10, what="a second notification")
            assert not task.done()
            assert server.connections == 1 and client.connects == 1
    assert "dropped a reply with an invalid id" in caplog.text
    assert "dropped a message nested too deep" in caplog.text
    assert "Task exception was never retrieved" not in caplog.text


async def test_an_error_during_connect_drops_the_connection_and_reconnects(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    attempts: list[int] = []

    async def on_connect() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise AttributeError("'int' object has no attribute 'get'")

    async with HostileMoonraker() as server:
        client = MoonrakerClient(server.url, on_connect=on_connect)
        async with client_running(client) as task:
            await asyncio.wait_for(client.ready.wait(), 15)
            assert not task.done()
            assert server.connections == 2 and len(attempts) == 2
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "unexpected error on the connection" in errors[0].getMessage()
    assert errors[0].exc_info is not None  # with its traceback, in the log only
    assert "connection lost; reconnecting" in caplog.text


async def test_a_webcam_list_of_numbers_does_not_stop_the_daemon(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with HostileMoonraker() as server:
        server.results["server.webcams.list"] = {"webcams": [1, "two", None, [3]]}
        cfg = write_daemon_config(tmp_path / "failwatch.cfg", moonraker_url=server.url,
                                  predictor_url="http://127.0.0.1:9/p", data_dir=tmp_path,
                                  serial_no="S", access_token="T")
        async with running_daemon(cfg) as daemon:
            await wait_until(lambda: "server.info" in server.calls, timeout=10,
                             what="the connect hook to get past the webcam list")
            assert daemon.client.ready.is_set() and daemon.client.connects == 1
    assert "camera: Moonraker has no webcam" in caplog.text
    assert "Traceback" not in caplog.text


async def test_the_same_error_at_every_connect_logs_its_traceback_once(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    attempts: list[int] = []

    async def on_connect() -> None:
        attempts.append(1)
        if len(attempts) <= 3:
            raise TypeError("unhashable type: 'list'")

    async with HostileMoonraker() as server:
        client = MoonrakerClient(server.url, on_connect=on_connect)
        async with client_running(client) as task:
            await asyncio.wait_for(client.ready.wait(), 30)  # it backs off in between
            assert not task.done() and server.connections == 4
    with_trace = [r for r in caplog.records if r.exc_info]
    assert len(with_trace) == 1
    assert caplog.text.count("the same error again (TypeError: unhashable type") == 2
