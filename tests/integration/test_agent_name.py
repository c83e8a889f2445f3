"""Moonraker's agent names are unique: failwatch waits for its name, on a fresh socket."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from sim.daemon_config import config_for
from sim.harness import SimPrinter
from sim.rpc_client import MoonrakerClient
from sim.waits import running_daemon, wait_until

pytestmark = pytest.mark.usefixtures("require_moonraker")


async def test_a_second_agent_named_failwatch_is_said_and_waited_for(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with SimPrinter() as printer:
        cfg = config_for(printer, tmp_path / "failwatch.cfg")
        other = MoonrakerClient(printer.url)
        await other.__aenter__()
        try:
            await other.identify("failwatch", api_key=printer.api_key)
            async with running_daemon(cfg, ready=False) as daemon:
                await wait_until(lambda: "a second failwatch for this printer?" in caplog.text,
                                 20, "the warning about the other agent")
                assert not daemon.client.ready.is_set()
                await other.__aexit__(None, None, None)
                await asyncio.wait_for(daemon.client.ready.wait(), 20)
        finally:
            await other.__aexit__(None, None, None)
    assert "still held by the previous connection; connecting again in 0.5 s" in caplog.text
    assert "Connection already identified" not in caplog.text  # no retry on a spent socket
