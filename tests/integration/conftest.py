"""Fixtures for integration tests against the real Moonraker and the simulated printer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sim.camera import FakeCamera
from sim.harness import SimPrinter
from sim.moonraker_server import moonraker_python
from sim.predictor import FakeObicoPredictor
from sim.rpc_client import MoonrakerClient


def _moonraker_available() -> str | None:
    try:
        moonraker_python()
    except FileNotFoundError as err:
        return str(err)
    return None


@pytest.fixture
def require_moonraker() -> None:
    """Fail loudly (not skip) when the Moonraker venv is missing: CI must have it."""
    problem = _moonraker_available()
    if problem:
        pytest.fail(problem)


@pytest.fixture
async def sim_printer(require_moonraker: None) -> AsyncIterator[SimPrinter]:
    """A started simulated printer (trusted clients, 1 h print, fake webcam)."""
    async with SimPrinter() as printer:
        yield printer


@pytest.fixture
async def ws_client(sim_printer: SimPrinter) -> AsyncIterator[MoonrakerClient]:
    """A websocket client connected (not identified) to the sim printer's Moonraker."""
    async with MoonrakerClient(sim_printer.url) as client:
        yield client


@pytest.fixture
async def fake_camera() -> AsyncIterator[FakeCamera]:
    async with FakeCamera() as camera:
        yield camera


@pytest.fixture
async def fake_predictor() -> AsyncIterator[FakeObicoPredictor]:
    async with FakeObicoPredictor("SERIAL-1", "TOKEN-1") as predictor:
        yield predictor
